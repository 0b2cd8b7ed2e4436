// After `vite build`: copies Swagger UI's files into dist/swagger/ (the server's /docs uses them),
// then writes a gzip twin (level 9, no timestamp: the build is reproducible) beside every text file.

import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "..", "src", "ailab", "web", "dist");
const swaggerDist = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const SWAGGER_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"];
const PACKED = new Set([".js", ".css", ".html", ".svg", ".json"]);

mkdirSync(join(dist, "swagger"), { recursive: true });
for (const name of SWAGGER_FILES) copyFileSync(join(swaggerDist, name), join(dist, "swagger", name));

function* files(folder) {
  for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

let count = 0;
for (const path of files(dist)) {
  if (!PACKED.has(extname(path))) continue;
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
  count += 1;
}
console.log(`compress: ${count} gzip files written in ${dist}`);
