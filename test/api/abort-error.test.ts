import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError } from "../../src/api/connect-error";

describe("a call's abort reason as the answer", () => {
  const log = { info() {}, warn() {}, error: jest.fn() };

  it("a reason that is a ConnectError (a deadline, a cancel, a shutdown) is answered as it is", () => {
    const reason = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    expect(toConnectError(reason, log)).toBe(reason);
  });

  it("a bare abort (a client that closed its connection) is CANCELLED, not INTERNAL, and logs no error", () => {
    const controller = new AbortController();
    controller.abort();
    expect(toConnectError(controller.signal.reason, log).code).toBe(Code.Canceled);
    expect(log.error).not.toHaveBeenCalled();
  });
});
