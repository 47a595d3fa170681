/*
 * Programme explorer: signs the person in to the API with authorization code + PKCE, then runs GraphiQL.
 *
 * Why this shape:
 * - The page is served only to someone with a sign-in session (the server redirects others to /login). That
 *   cookie never authorises GraphQL; this script obtains a bearer token for the built-in public client
 *   `programme-explorer` exactly as a partner app would (RFC 6749 code flow, RFC 7636 PKCE S256 via WebCrypto).
 * - Tokens live in this closure only: not in the URL (code/state are stripped with history.replaceState), not in
 *   localStorage or sessionStorage. Only the PKCE verifier and state sit in sessionStorage during the redirect
 *   round trip, and are deleted as soon as they are read.
 * - GraphiQL's own storage is an in-memory object: by default it keeps tabs *and results* in localStorage, and
 *   results may hold personal data that must not outlive the tab on a shared computer.
 * - No inline script or style anywhere: the page runs under script-src 'self'.
 */
(function () {
  "use strict";

  var PKCE_KEY = "programme-explorer.pkce";
  var REFRESH_MARGIN_MS = 60 * 1000;
  var MIN_REFRESH_DELAY_MS = 5 * 1000;

  var root = document.getElementById("explorer");
  var statusBox = document.getElementById("explorer-status");
  var viewerBox = document.getElementById("explorer-viewer");
  var signOutButton = document.getElementById("explorer-sign-out");
  var config = {
    clientId: root.dataset.clientId,
    redirectUri: root.dataset.redirectUri,
    scope: root.dataset.scope,
    schemaUrl: root.dataset.schemaUrl,
    operationsUrl: root.dataset.operationsUrl
  };

  var tokens = null; // {access, refresh, expiresAt}
  var refreshTimer = null;
  var refreshing = null;
  var reactRoot = null;

  function ExplorerError(message, code) {
    this.name = "ExplorerError";
    this.message = message;
    this.code = code || null;
  }
  ExplorerError.prototype = Object.create(Error.prototype);

  function showStatus(message, kind, action) {
    statusBox.textContent = message;
    statusBox.className = "explorer-status" + (kind ? " explorer-status-" + kind : "");
    statusBox.hidden = false;
    if (action) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "explorer-status-action";
      button.textContent = action.label;
      button.addEventListener("click", action.run);
      statusBox.appendChild(document.createTextNode(" "));
      statusBox.appendChild(button);
    }
  }

  function hideStatus() {
    statusBox.hidden = true;
    statusBox.textContent = "";
  }

  // ---- PKCE -------------------------------------------------------------------------------------------------

  function base64url(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i += 1) {
      text += String.fromCharCode(bytes[i]);
    }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString(byteCount) {
    var bytes = new Uint8Array(byteCount);
    window.crypto.getRandomValues(bytes);
    return base64url(bytes);
  }

  function s256(verifier) {
    return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (digest) {
      return base64url(new Uint8Array(digest));
    });
  }

  function startAuthorization() {
    if (!window.crypto || !window.crypto.subtle) {
      showStatus("The explorer needs a secure connection (HTTPS, or localhost) to sign in.", "error");
      return Promise.resolve();
    }
    var verifier = randomString(48);
    var state = randomString(24);
    sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier: verifier, state: state }));
    return s256(verifier).then(function (challenge) {
      var query = new URLSearchParams({
        response_type: "code",
        client_id: config.clientId,
        redirect_uri: config.redirectUri,
        scope: config.scope,
        state: state,
        code_challenge: challenge,
        code_challenge_method: "S256"
      });
      window.location.assign("/oauth/authorize?" + query.toString());
    });
  }

  function takeSavedPkce() {
    var raw = sessionStorage.getItem(PKCE_KEY);
    sessionStorage.removeItem(PKCE_KEY);
    try {
      return raw ? JSON.parse(raw) : null;
    } catch (ignored) {
      return null;
    }
  }

  // ---- Tokens -----------------------------------------------------------------------------------------------

  function tokenRequest(form) {
    return fetch("/oauth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(form),
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok || !body.access_token) {
          throw new ExplorerError(
            body.error_description || body.error || "The token endpoint answered " + response.status + ".",
            body.error || "token_error"
          );
        }
        var lifetime = Number(body.expires_in) > 0 ? Number(body.expires_in) * 1000 : 5 * 60 * 1000;
        tokens = {
          access: body.access_token,
          refresh: body.refresh_token || (tokens && tokens.refresh) || null,
          expiresAt: Date.now() + lifetime
        };
        scheduleRefresh(lifetime);
        return tokens.access;
      });
    });
  }

  function scheduleRefresh(lifetime) {
    window.clearTimeout(refreshTimer);
    if (!tokens || !tokens.refresh) {
      return;
    }
    // Refresh a minute before expiry (or at 80% of a short lifetime), so requests never carry a dead token.
    var delay = Math.max(MIN_REFRESH_DELAY_MS, Math.min(lifetime - REFRESH_MARGIN_MS, lifetime * 0.8));
    refreshTimer = window.setTimeout(function () {
      refresh().catch(sessionLost);
    }, delay);
  }

  function refresh() {
    if (!tokens || !tokens.refresh) {
      return Promise.reject(new ExplorerError("Your sign-in has ended.", "no_refresh_token"));
    }
    if (!refreshing) {
      refreshing = tokenRequest({
        grant_type: "refresh_token",
        refresh_token: tokens.refresh,
        client_id: config.clientId
      }).finally(function () {
        refreshing = null;
      });
    }
    return refreshing;
  }

  function accessToken() {
    if (!tokens) {
      return Promise.reject(new ExplorerError("You are signed out.", "signed_out"));
    }
    // Timers are throttled in background tabs: refresh on demand when the token is about to expire.
    if (Date.now() > tokens.expiresAt - REFRESH_MARGIN_MS / 2) {
      return refresh();
    }
    return Promise.resolve(tokens.access);
  }

  function sessionLost(error) {
    tokens = null;
    window.clearTimeout(refreshTimer);
    showStatus((error && error.message ? error.message + " " : "") + "Your sign-in has ended.", "error", {
      label: "Sign in again",
      run: function () { startAuthorization(); }
    });
  }

  // ---- GraphQL ----------------------------------------------------------------------------------------------

  /*
   * GraphiQL updates the operation name a moment after the editor changes, so just after a saved operation is
   * loaded it may still name the previous one. Send a name only if the document defines it; with a single
   * operation no name is needed at all.
   */
  function operationNameFor(params) {
    var name = params.operationName || null;
    try {
      var names = GraphiQL.GraphQL.parse(params.query).definitions
        .filter(function (definition) { return definition.kind === "OperationDefinition"; })
        .map(function (definition) { return definition.name ? definition.name.value : null; });
      if (names.indexOf(name) !== -1) {
        return name;
      }
      return names.length === 1 ? names[0] : name;
    } catch (ignored) {
      return name; // the API reports the syntax error
    }
  }

  function requestBody(params) {
    var body = { variables: params.variables || null, operationName: operationNameFor(params) };
    if (Object.prototype.hasOwnProperty.call(SAVED_HASHES, params.query)) {
      body.extensions = { persistedQuery: { version: 1, sha256Hash: SAVED_HASHES[params.query] } };
    } else {
      body.query = params.query;
    }
    return body;
  }

  function postGraphQL(params, token) {
    return fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        Authorization: "Bearer " + token
      },
      body: JSON.stringify(requestBody(params)),
      credentials: "omit",
      cache: "no-store"
    });
  }

  function readGraphQL(response) {
    return response.text().then(function (text) {
      try {
        return JSON.parse(text);
      } catch (ignored) {
        return { errors: [{ message: "The API answered " + response.status + ": " + text.slice(0, 300) }] };
      }
    });
  }

  /* GraphiQL's fetcher: the bearer token on every request; one refresh and retry when the API says 401. */
  function fetcher(params) {
    return accessToken()
      .then(function (token) { return postGraphQL(params, token); })
      .then(function (response) {
        if (response.status !== 401 || !tokens) {
          return response;
        }
        return refresh().then(function (token) { return postGraphQL(params, token); });
      })
      .then(readGraphQL)
      .catch(function (error) {
        if (error instanceof ExplorerError) {
          sessionLost(error);
        }
        return { errors: [{ message: error.message || String(error) }] };
      });
  }

  function run(query, variables) {
    return fetcher({ query: query, variables: variables || null, operationName: null });
  }

  // ---- Saved operations -------------------------------------------------------------------------------------

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate());
  }

  function startOfWeek(date) {
    var day = startOfDay(date);
    var sinceMonday = (day.getDay() + 6) % 7;
    return new Date(day.getFullYear(), day.getMonth(), day.getDate() - sinceMonday);
  }

  function addDays(date, days) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
  }

  // The saved operations' texts come from the server, where they are the explorer's registered documents; a
  // text sent unchanged goes by its hash alone (postGraphQL), as any client's persisted document would.
  var SAVED_HASHES = {};
  JSON.parse(root.dataset.savedOperations || "[]").forEach(function (saved) {
    SAVED_HASHES[saved.query] = saved.sha256;
  });


  /*
   * The saved operations live in saved-operations.json (validated against the schema by the test suite). Each
   * names the roles it is for, and how its variables are made: null (none), or one of VARIABLES below.
   */
  var VARIABLES = {
    thisWeek: function () {
      var now = new Date();
      return { startsFrom: now.toISOString(), startsBefore: addDays(startOfWeek(now), 7).toISOString() };
    },
    thisMonth: function () {
      var now = new Date();
      return {
        from: new Date(now.getFullYear(), now.getMonth(), 1).toISOString(),
        to: new Date(now.getFullYear(), now.getMonth() + 1, 1).toISOString()
      };
    },
    instrument: function () { return { instrumentCode: "swemwbs" }; }
  };

  function loadOperations() {
    return fetch(config.operationsUrl, { credentials: "same-origin", cache: "no-cache" }).then(function (response) {
      if (!response.ok) {
        return [];
      }
      return response.json();
    }).catch(function () { return []; });
  }

  /* The operations for the signed-in person's role (all of them when the role is unknown). */
  function forRole(operations, role) {
    var wanted = role ? role.toLowerCase() : null;
    var mine = operations.filter(function (operation) {
      return !wanted || operation.roles.indexOf(wanted) !== -1;
    });
    return mine.length ? mine : operations;
  }

  function loadOperation(editor, operation) {
    var variables = operation.variables ? VARIABLES[operation.variables]() : null;
    if (editor.queryEditor) {
      editor.queryEditor.setValue(operation.query);
    }
    if (editor.variableEditor) {
      editor.variableEditor.setValue(variables ? JSON.stringify(variables, null, 2) : "");
    }
  }

  // ---- Page -------------------------------------------------------------------------------------------------

  function inMemoryStorage() {
    var items = new Map();
    return {
      getItem: function (key) { return items.has(key) ? items.get(key) : null; },
      setItem: function (key, value) { items.set(key, String(value)); },
      removeItem: function (key) { items.delete(key); },
      clear: function () { items.clear(); },
      get length() { return items.size; }
    };
  }

  function showViewer() {
    var query = "query Viewer { viewer { subject role scopes regions { name } organisation { name } } }";
    return run(query).then(function (result) {
      var viewer = result && result.data && result.data.viewer;
      if (!viewer) {
        var message = result && result.errors && result.errors[0] ? result.errors[0].message : "unknown error";
        viewerBox.textContent = "Could not read who you are: " + message;
        return;
      }
      var regions = (viewer.regions || []).map(function (region) { return region.name; });
      var parts = [];
      if (viewer.role) {
        parts.push(viewer.role.toLowerCase().replace(/_/g, " "));
      }
      if (viewer.organisation) {
        parts.push(viewer.organisation.name);
      }
      parts.push((regions.length === 1 ? "Region: " : "Regions: ") + (regions.join(", ") || "none"));
      viewerBox.textContent = "· " + parts.join(" · ");
      viewerBox.dataset.regions = JSON.stringify(regions);
      viewerBox.dataset.scopes = (viewer.scopes || []).join(" ");
      viewerBox.dataset.subject = viewer.subject;
      viewerBox.dataset.role = viewer.role || "";
      return viewer;
    });
  }

  function loadSchema() {
    return fetch(config.schemaUrl, { credentials: "same-origin", cache: "no-cache" }).then(function (response) {
      if (!response.ok) {
        throw new ExplorerError("Could not load the schema (" + response.status + ").", "schema");
      }
      return response.json();
    }).then(function (body) { return body.data; });
  }

  function renderGraphiQL(introspection, operations) {
    var h = React.createElement;
    var useEditorContext = GraphiQL.React.useEditorContext;

    function SavedOperations() {
      var editor = useEditorContext({ nonNull: true });
      return h("div", { className: "explorer-saved" },
        h("div", { className: "graphiql-doc-explorer-title" }, "Saved operations"),
        h("p", { className: "explorer-saved-hint" }, "Click one to load it, then run it with the ▶ button."),
        h("ul", { className: "explorer-saved-list" }, operations.map(function (operation) {
          return h("li", { key: operation.id },
            h("button", {
              type: "button",
              className: "explorer-saved-button",
              "data-operation": operation.id,
              onClick: function () { loadOperation(editor, operation); }
            }, operation.title),
            h("p", { className: "explorer-saved-description" }, operation.description));
        })));
    }

    function SavedIcon() {
      return h("svg", { viewBox: "0 0 24 24", width: "1em", height: "1em", "aria-hidden": "true" },
        h("path", {
          d: "M6 3h12v18l-6-4-6 4z",
          fill: "none",
          stroke: "currentColor",
          strokeWidth: 1.5,
          strokeLinejoin: "round"
        }));
    }

    var savedPlugin = { title: "Saved operations", icon: SavedIcon, content: SavedOperations };
    var element = h(GraphiQL, {
      fetcher: fetcher,
      schema: introspection,
      storage: inMemoryStorage(),
      plugins: [savedPlugin],
      visiblePlugin: savedPlugin,
      defaultQuery: operations.length ? operations[0].query : "{ viewer { subject role scopes } }",
      defaultEditorToolsVisibility: "variables",
      isHeadersEditorEnabled: false,
      shouldPersistHeaders: false
    });
    reactRoot = ReactDOM.createRoot(document.getElementById("graphiql"));
    reactRoot.render(element);
  }

  function signOut() {
    signOutButton.disabled = true;
    window.clearTimeout(refreshTimer);
    var held = tokens;
    tokens = null;
    if (reactRoot) {
      reactRoot.unmount(); // drop results and editors from memory with the token
      reactRoot = null;
    }
    showStatus("Signing out…");
    // One after the other: the refresh token (and with it the token family), then the access token. Sent
    // together they would be two concurrent writes, which SQLite answers with "database is locked".
    var revocations = Promise.resolve();
    if (held && held.refresh) {
      revocations = revocations.then(function () { return revoke(held.refresh, "refresh_token"); });
    }
    if (held && held.access) {
      revocations = revocations.then(function () { return revoke(held.access, "access_token"); });
    }
    return revocations.catch(function () { return null; }).then(function () {
      var form = document.createElement("form");
      form.method = "post";
      form.action = "/logout";
      document.body.appendChild(form);
      form.submit();
    });
  }

  function revoke(token, hint) {
    return fetch("/oauth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: token, token_type_hint: hint, client_id: config.clientId }),
      credentials: "omit",
      cache: "no-store"
    });
  }

  function start() {
    signOutButton.addEventListener("click", function () { signOut(); });
    var params = new URLSearchParams(window.location.search);
    if (params.has("error")) {
      takeSavedPkce();
      window.history.replaceState(null, "", window.location.pathname);
      showStatus("Sign-in was refused: " + (params.get("error_description") || params.get("error")), "error", {
        label: "Try again",
        run: function () { startAuthorization(); }
      });
      return Promise.resolve();
    }
    if (!params.has("code")) {
      return startAuthorization();
    }
    var saved = takeSavedPkce();
    var code = params.get("code");
    var state = params.get("state");
    window.history.replaceState(null, "", window.location.pathname); // the code must not linger in the URL
    if (!saved || saved.state !== state) {
      showStatus("The sign-in answer did not match this tab.", "error", {
        label: "Sign in again",
        run: function () { startAuthorization(); }
      });
      return Promise.resolve();
    }
    showStatus("Signing in…");
    return tokenRequest({
      grant_type: "authorization_code",
      code: code,
      redirect_uri: config.redirectUri,
      client_id: config.clientId,
      code_verifier: saved.verifier
    })
      .then(function () { return Promise.all([loadSchema(), showViewer(), loadOperations()]); })
      .then(function (results) {
        hideStatus();
        root.classList.add("explorer-ready");
        var viewer = results[1];
        renderGraphiQL(results[0], forRole(results[2], viewer ? viewer.role : null));
      })
      .catch(function (error) {
        showStatus("Sign-in failed: " + (error.message || String(error)), "error", {
          label: "Try again",
          run: function () { startAuthorization(); }
        });
      });
  }

  start();
})();
