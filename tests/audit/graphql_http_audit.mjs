// The graphql-http conformance audit against a running service, with a bearer token on every request.
// Usage: node graphql_http_audit.mjs URL TOKEN; prints one JSON object per audit, one per line.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    line.reason = result.reason;
  }
  console.log(JSON.stringify(line));
}
