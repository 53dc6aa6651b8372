import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import ts from "typescript";

// Every TypeScript snippet of the README, as a reader would paste it into a file of their own:
// compiled (type-checked, not run) one file each, with "@pg-eventstore/client" as the client package,
// ./gen as the generated code, ./examples as the repository's examples, and ./registry as the
// snippet that exports `registry` (the README's later snippets import it). A snippet that leaves
// out an import or uses a name it never defines fails here.

const ROOT = resolve(__dirname, "../..");

function snippets(): { line: number; code: string }[] {
  const lines = readFileSync(join(ROOT, "README.md"), "utf8").split("\n");
  const found: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```ts") continue;
    const start = i + 1;
    const body: string[] = [];
    while (++i < lines.length && lines[i].trim() !== "```") body.push(lines[i]);
    found.push({ line: start, code: body.join("\n") });
  }
  return found;
}

test("every TypeScript snippet of the README compiles on its own", () => {
  const found = snippets();
  expect(found.length).toBeGreaterThanOrEqual(10);
  const dir = mkdtempSync(join(ROOT, ".readme-snippets-"));
  try {
    const files = found.map(({ line, code }) => {
      const file = join(dir, /^export const registry\b/m.test(code) ? "registry.ts" : `snippet-line-${line}.ts`);
      // Each an ES module: top-level await, as in a reader's own file. Its directory is one
      // below the repository's root: ./gen and ./examples are one up.
      writeFileSync(file, `${code.replace(/from "\.\/(gen|examples)\//g, 'from "../$1/')}\nexport {};\n`);
      return file;
    });
    const program = ts.createProgram(files, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules/@types")],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      baseUrl: ROOT,
      paths: { "@pg-eventstore/client": ["src/client/index.ts"] },
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.includes(d.file.fileName))
      .map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${d.file!.fileName.slice(dir.length + 1)}:${line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
      });
    expect(problems).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
