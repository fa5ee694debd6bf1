// Builds with esbuild: the tests (test/*.test.ts → build/test/*.js, run by
// node --test), the library (src → dist/index.js) and, with --web, the chat
// page's bundle (examples/chat/web/src → examples/chat/web/static/app.js,
// committed so that the Go server embeds it without npm).
import { build } from "esbuild";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url))); // clients/ts
const repo = join(here, "..", "..");
const web = process.argv.includes("--web");
const tests = readdirSync(join(here, "test"))
  .filter((f) => f.endsWith(".test.ts"))
  .map((f) => join(here, "test", f));

await build({
  entryPoints: tests,
  outdir: join(here, "build", "test"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  logLevel: "warning",
});

await build({
  entryPoints: [join(here, "src", "index.ts")],
  outfile: join(here, "dist", "index.js"),
  bundle: true,
  platform: "neutral",
  format: "esm",
  target: "es2022",
  packages: "external",
  logLevel: "warning",
});

if (web) {
  await build({
    entryPoints: [join(repo, "examples", "chat", "web", "src", "app.ts")],
    outfile: join(repo, "examples", "chat", "web", "static", "app.js"),
    bundle: true,
    platform: "browser",
    format: "esm",
    target: ["chrome111", "firefox111", "safari16"],
    minify: true,
    legalComments: "none",
    alias: { "@msgtrans/client": join(here, "src", "index.ts") },
    nodePaths: [join(here, "node_modules")],
    logLevel: "warning",
  });
}
