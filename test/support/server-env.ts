import { SETTING_VARIABLES } from "../../src/server/config";

/**
 * This process's environment without any of the server's settings: a test that starts the
 * server as a process says each setting it means, whatever the shell running the tests set.
 */
export function withoutSettings(env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !SETTING_VARIABLES.includes(k)));
}
