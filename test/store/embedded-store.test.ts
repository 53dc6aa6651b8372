import { openStore } from "../../src/store";
import { describeStoreContract } from "./store-contract";

describeStoreContract("embedded (PGlite)", async () => {
  const store = await openStore({ location: { kind: "embedded", dataDir: "memory" } });
  return { store, dispose: () => store.close() };
});
