import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The API server to proxy to while developing with `npm run dev`.
const server = process.env.AILAB_URL || "http://127.0.0.1:8001";
const proxied = ["/auth", "/chat", "/runs", "/sessions", "/pipelines", "/v1", "/api-keys", "/users", "/files",
  "/metrics", "/performance", "/benchmark"];

export default defineConfig({
  base: "/ui/",
  plugins: [preact()],
  build: {
    outDir: "../src/ailab/web/dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: {
    proxy: Object.fromEntries(proxied.map((path) => [path, { target: server }])),
  },
});
