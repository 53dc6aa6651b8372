import { ProjectionSchema, ProjectionStatus } from "../../gen/eventstore/v1/projections_pb";
import { CliError, type Connection } from "./connection";
import { jsonLine, type Output } from "./output";

export const PROJECTIONS_USAGE = `Usage: eventstore projections <ls|info|stop|reset|delete> [NAME] [options]

  projections ls [--prefix P]   one line per projection: name, status, position, version
  projections info NAME         the record, as JSON (state in base64)
  projections stop NAME         ask its runner to stop (status STOPPING; it must be RUNNING)
  projections reset NAME        ask its runner to start again from the initial state, its read
                                model reset (status RESETTING; done by the next runner if none runs)
  projections delete NAME       ask its runner to delete it and what it made (status DELETING)
`;

export interface ProjectionsArgs {
  action: string;
  name?: string;
  prefix: string;
  json: boolean;
}

const ASKS: Record<string, { status: ProjectionStatus; expected?: ProjectionStatus }> = {
  stop: { status: ProjectionStatus.STOPPING, expected: ProjectionStatus.RUNNING },
  reset: { status: ProjectionStatus.RESETTING },
  delete: { status: ProjectionStatus.DELETING },
};

export async function projectionsCommand(c: Connection, args: ProjectionsArgs, output: Output): Promise<void> {
  if (args.action === "ls") {
    let pageToken = "";
    do {
      const page = await c.projections.listProjections({ prefix: args.prefix, pageSize: 1000, pageToken });
      for (const p of page.projections) {
        output.out(args.json ? jsonLine(ProjectionSchema, p) : `${p.name}\t${statusName(p.status)}\tposition ${p.position}\tversion ${p.version}`);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return;
  }
  if (!args.name) throw new CliError("name the projection");
  if (args.action === "info") {
    const { projection } = await c.projections.getProjection({ name: args.name });
    output.out(jsonLine(ProjectionSchema, projection!));
    return;
  }
  const ask = Object.hasOwn(ASKS, args.action) ? ASKS[args.action] : undefined;
  if (!ask) throw new CliError(`unknown projections command: ${args.action || "(none)"}`);
  const { projection } = await c.projections.updateProjectionStatus({ name: args.name, status: ask.status, expectedStatus: ask.expected });
  output.out(jsonLine(ProjectionSchema, projection!));
}

function statusName(status: ProjectionStatus): string {
  return (ProjectionStatus[status] ?? String(status)).toLowerCase();
}
