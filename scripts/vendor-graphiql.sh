#!/usr/bin/env bash
# Reproduce the explorer's vendored GraphiQL and React from npm, at pinned versions, with their licences.
#
# Why vendored rather than loaded from a CDN: the explorer must work on offline and locked-down networks and
# under a Content-Security-Policy of script-src 'self'. graphiql 3.x ships a ready UMD build that needs no
# bundler beside React 18's UMD builds (graphiql 4+ are ES modules with Monaco workers and need a build step).
#
# Usage: scripts/vendor-graphiql.sh   (needs node and npm; writes programme_api/explorer/static/)
set -euo pipefail

GRAPHIQL_VERSION="3.9.0"
REACT_VERSION="18.3.1"
REACT_DOM_VERSION="18.3.1"

cd "$(dirname "$0")/.."
static="programme_api/explorer/static"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch NAME VERSION: unpack the published tarball into $work/NAME and check its integrity
    local name="$1" version="$2"
    mkdir -p "$work/$name"
    (cd "$work" && npm pack --silent "$name@$version" > "$name.tgz.name")
    local tarball
    tarball="$work/$(cat "$work/$name.tgz.name")"
    local expected actual
    expected="$(npm view "$name@$version" dist.integrity)"
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [[ "$expected" != "$actual" ]]; then
        echo "integrity mismatch for $name@$version: $actual != $expected" >&2
        exit 1
    fi
    tar -xzf "$tarball" -C "$work/$name" --strip-components=1
    echo "$expected"
}

graphiql_integrity="$(fetch graphiql "$GRAPHIQL_VERSION")"
react_integrity="$(fetch react "$REACT_VERSION")"
react_dom_integrity="$(fetch react-dom "$REACT_DOM_VERSION")"

mkdir -p "$static"
cp "$work/graphiql/graphiql.min.js" "$static/graphiql.min.js"
cp "$work/graphiql/graphiql.min.css" "$static/graphiql.min.css"
cp "$work/graphiql/LICENSE" "$static/LICENSE-graphiql"
cp "$work/react/umd/react.production.min.js" "$static/react.production.min.js"
cp "$work/react/LICENSE" "$static/LICENSE-react"
cp "$work/react-dom/umd/react-dom.production.min.js" "$static/react-dom.production.min.js"
cp "$work/react-dom/LICENSE" "$static/LICENSE-react-dom"

# The minified bundles end with a sourceMappingURL comment for maps we do not ship; drop it so browsers'
# developer tools do not request files that would 404.
for file in graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js; do
    sed -i -E '/^\/[/*][#@] sourceMappingURL=.*$/d' "$static/$file"
done

# graphiql's React-15 compatibility error message names two CDNs. It loads nothing, but the explorer's rule is
# that no served file names a CDN at all, so the sentence is reworded, and the check below fails the vendoring
# if any CDN name is left in a served file. (The patterns are bracketed so this script names none either.)
sed -i 's/If you are using a CDN source ([j]sdelivr, [u]npkg, etc), follow this example:/If you load GraphiQL with script tags, follow this example:/' \
    "$static/graphiql.min.js"
if grep -lEi '[u]npkg|[j]sdelivr|[c]dnjs|[e]sm\.sh|[g]oogleapis\.com/css' "$static"/*.js "$static"/*.css; then
    echo "a served file still names a CDN" >&2
    exit 1
fi

sha() { sha256sum "$static/$1" | cut -d' ' -f1; }
cat > "$static/VENDORED.md" <<MD
# Vendored third-party files

Copied from the npm registry's published tarballs by \`scripts/vendor-graphiql.sh\` (run it to reproduce;
the tarballs' integrity is checked against \`npm view ... dist.integrity\`). Trailing \`sourceMappingURL\`
comments are removed (the maps are not shipped), and graphiql's React-15 error message no longer names CDNs
(it loaded nothing; no served file names a CDN); nothing else is changed.

| file | npm package | version | licence | tarball integrity |
|---|---|---|---|---|
| graphiql.min.js, graphiql.min.css | graphiql | $GRAPHIQL_VERSION | MIT (LICENSE-graphiql) | $graphiql_integrity |
| react.production.min.js (umd/) | react | $REACT_VERSION | MIT (LICENSE-react) | $react_integrity |
| react-dom.production.min.js (umd/) | react-dom | $REACT_DOM_VERSION | MIT (LICENSE-react-dom) | $react_dom_integrity |

SHA-256 of the files as served:

| file | sha256 |
|---|---|
| graphiql.min.js | $(sha graphiql.min.js) |
| graphiql.min.css | $(sha graphiql.min.css) |
| react.production.min.js | $(sha react.production.min.js) |
| react-dom.production.min.js | $(sha react-dom.production.min.js) |
MD
echo "vendored graphiql $GRAPHIQL_VERSION, react $REACT_VERSION, react-dom $REACT_DOM_VERSION into $static"
