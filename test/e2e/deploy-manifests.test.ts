import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { parse, parseAllDocuments } from "yaml";
import { SETTING_VARIABLES } from "../../src/server/config";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { startThrowawayCluster, type Cluster } from "../support/throwaway-cluster";
import { scrape, valueOf } from "../support/prometheus-text";

// No Docker engine or Kubernetes runs here. The manifests in deploy/ are held to what the
// server is (its commands, its settings, the files they mount), and the compose file's steps
// are run as it runs them, against a PostgreSQL cluster of this test's own: the roles script,
// the migration as the owner, the grants with psql, the server as the runtime role, and the
// health check its healthcheck runs.

const ROOT = resolve(__dirname, "../..");
const DEPLOY = join(ROOT, "deploy");
const run = promisify(execFile);

interface ComposeService {
  image?: string;
  build?: { context: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const compose = parse(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const kustomization = parse(readFileSync(join(DEPLOY, "kustomization.yaml"), "utf8")) as { resources: string[]; configMapGenerator: { files: string[] }[] };
const kube = kustomization.resources.flatMap((file) => parseAllDocuments(readFileSync(join(DEPLOY, file), "utf8")).map((d) => d.toJS() as Record<string, any>));
const byKind = (kind: string) => kube.filter((d) => d.kind === kind);
const SERVER = ["node", "dist/src/server/main.js"];

describe("deploy/compose.yaml", () => {
  test("PostgreSQL with a volume and a health check, a one-shot migration, the grants, then the server", () => {
    const { postgres: pg, migrate, grants, eventstore } = compose.services;
    expect(pg.volumes).toContain("pgdata:/var/lib/postgresql/data");
    expect(Object.keys(compose.volumes)).toEqual(["pgdata"]);
    expect(pg.healthcheck?.test.join(" ")).toMatch(/pg_isready/);
    expect(migrate.command).toEqual([...SERVER, "migrate"]);
    expect(migrate.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    expect(grants.depends_on).toEqual({ migrate: { condition: "service_completed_successfully" } });
    expect(eventstore.depends_on).toEqual({ grants: { condition: "service_completed_successfully" } });
    // The image's own CMD serves: the server's service names no command.
    expect(eventstore.command).toBeUndefined();
    expect(eventstore.build?.context).toBe("..");
    expect(existsSync(join(DEPLOY, eventstore.build!.context, "Dockerfile"))).toBe(true);
  });

  test("every variable given to the server is one of its settings, and every file it mounts exists", () => {
    for (const name of ["migrate", "eventstore"]) {
      for (const variable of Object.keys(compose.services[name].environment ?? {})) expect({ name, variable, known: SETTING_VARIABLES.includes(variable) }).toEqual({ name, variable, known: true });
    }
    for (const service of Object.values(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(":");
        if (source.startsWith(".")) expect({ volume, exists: existsSync(join(DEPLOY, source)) }).toEqual({ volume, exists: true });
      }
    }
    // The server connects as the runtime role, the migration as the owner.
    expect(compose.services.migrate.environment!.DATABASE_URL).toMatch(/^postgres:\/\/eventstore_owner:/);
    expect(compose.services.eventstore.environment!.DATABASE_URL).toMatch(/^postgres:\/\/eventstore_runtime:/);
  });
});

describe("deploy/kustomization.yaml and deploy/kubernetes/", () => {
  test("a migration Job, a Deployment with gRPC health probes and resource requests, a Service, a disruption budget", () => {
    expect(kube.map((d) => d.kind).sort()).toEqual(["Deployment", "Job", "PodDisruptionBudget", "Service"]);
    for (const file of kustomization.configMapGenerator.flatMap((g) => g.files)) expect(existsSync(join(DEPLOY, file))).toBe(true);
    const [deployment] = byKind("Deployment");
    const [container] = deployment.spec.template.spec.containers;
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) expect(container[probe].grpc).toEqual({ port: 50051 });
    expect(container.ports).toEqual(expect.arrayContaining([{ name: "grpc", containerPort: 50051 }]));
    expect(container.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
    const [service] = byKind("Service");
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(byKind("PodDisruptionBudget")[0].spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
  });

  test("their commands are the compose file's (run below), and their variables the server's settings", () => {
    const [deployment] = byKind("Deployment");
    const [container] = deployment.spec.template.spec.containers;
    const dockerfileCmd = JSON.parse(/^CMD (\[.*\])$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))![1]) as string[];
    expect(container.command).toEqual(dockerfileCmd);
    const job = byKind("Job")[0].spec.template.spec;
    expect(job.initContainers[0].command).toEqual(compose.services.migrate.command);
    expect(job.containers[0].command.join(" ")).toContain(compose.services.grants.command!.slice(2).join(" "));
    for (const env of [...container.env, ...job.initContainers[0].env]) expect({ env: env.name, known: SETTING_VARIABLES.includes(env.name) }).toEqual({ env: env.name, known: true });
    expect(kube.filter((d) => d.kind === "Secret")).toEqual([]);
  });
});

describe("the compose file's steps, run against a cluster of this test's own", () => {
  let cluster: Cluster;
  let server: ServerProcess | undefined;
  let host: string;
  let port: string;
  // The compose network's postgres:5432, here.
  const local = (url: string) => url.replace("@postgres:5432/", `@${host}:${port}/`);

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    ({ hostname: host, port } = new URL(cluster.url));
    const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    await admin`create database eventstore`;
    await admin.end();
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await cluster?.destroy();
  });

  test("roles, migration as the owner, grants, the server as the runtime role, healthy", async () => {
    const { postgres: pg, migrate, grants, eventstore } = compose.services;
    const env = { ...process.env, PGHOST: host, PGPORT: port, ...pg.environment };
    await run("sh", [join(DEPLOY, "compose-init-roles.sh")], { env });
    await run(process.execPath, [join(ROOT, migrate.command![1]), migrate.command![2]], { env: { ...process.env, ...migrate.environment, DATABASE_URL: local(migrate.environment!.DATABASE_URL) } });
    const [psql, url, ...args] = grants.command!;
    await run(psql, [local(url), ...args.map((a) => (a === "/deploy/runtime-grants.sql" ? join(DEPLOY, "runtime-grants.sql") : a))]);

    // The runtime role owns nothing and may create nothing: the server runs on the grants alone.
    const asRuntime = postgres(local(eventstore.environment!.DATABASE_URL), { max: 1, onnotice: () => {} });
    await expect(asRuntime`create table eventstore.nope (x int)`).rejects.toThrow(/permission denied/);
    await asRuntime.end();

    server = await startServerProcess({
      ...eventstore.environment,
      DATABASE_URL: local(eventstore.environment!.DATABASE_URL),
      AUTH_FILE: join(ROOT, "examples/security/auth.yaml"),
      HOST: "127.0.0.1",
      METRICS_HOST: "127.0.0.1",
      METRICS_PORT: "0",
    }, ["serve"]);
    const health = eventstore.healthcheck!.test;
    expect(health.slice(0, 2)).toEqual(["CMD", "node"]);
    await run(health[1], health.slice(2).map((a) => a.replace("127.0.0.1:50051", `127.0.0.1:${server!.port}`)));
    const ready = server.logs.find((l) => l.msg === "ready")!;
    const metricsPort = Number(new URL(String(ready.metrics)).port);
    expect(valueOf(await scrape(metricsPort), "eventstore_db_pool_connections", { pool: "write" })).toBe(3);
  }, 120_000);
});
