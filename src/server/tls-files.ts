import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { TlsFiles } from "./config";
import type { TlsMaterial } from "./listen";

/** The certificate, key and client CA as the files hold them now. */
export function readTls(files: TlsFiles): TlsMaterial {
  return {
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    clientCa: files.clientCa === undefined ? undefined : readFileSync(files.clientCa),
  };
}

/**
 * Calls `onChange` when any of the files changes (polled, as the auth file is: a renewed
 * certificate is usually renamed into place). Answers the function that stops watching.
 */
export function watchTls(files: TlsFiles, onChange: () => void, intervalMs = 1000): () => void {
  const paths = [files.cert, files.key, ...(files.clientCa === undefined ? [] : [files.clientCa])];
  for (const p of paths) watchFile(p, { interval: intervalMs, persistent: false }, onChange);
  return () => {
    for (const p of paths) unwatchFile(p, onChange);
  };
}
