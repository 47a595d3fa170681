# programme-api: one image for `serve`, `worker` and the CLI (migrations, imports, exports).
# Build: docker build -t programme-api .   Run: see deploy/README.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PROGRAMME_API_LOG_FORMAT=json \
    PROGRAMME_API_SECRET_KEY_FILE=/run/secrets/programme-keys.json

WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini schema.graphql ./
COPY alembic ./alembic
COPY programme_api ./programme_api
RUN pip install -c constraints.txt . && useradd --system --uid 10001 programme
USER programme

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
# SIGTERM (docker stop) drains requests in flight for up to --graceful-timeout seconds.
STOPSIGNAL SIGTERM
CMD ["programme-api", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--graceful-timeout", "30"]
