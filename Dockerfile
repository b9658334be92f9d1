# The worker as a container, for compose.yaml's "cluster" profile:
#   docker compose --profile cluster up -d --scale worker=3
# Configure it with AMQP_URL (one broker, or a comma-separated list of a cluster's nodes), or
# AMQP_URL_FILE (a file holding it, such as a Docker secret), and TASK_QUEUE_TYPE; its flags
# follow the image name: docker run IMAGE --concurrency 4.
# The Deno version is the one the project is tested with.
FROM denoland/deno:2.9.6

WORKDIR /app
USER deno
COPY deno.json deno.lock ./
COPY lib/ lib/
COPY mod.ts worker.ts ./
# npm:amqplib, fetched and checked against deno.lock at build time, not at start.
RUN deno install --frozen-lockfile --entrypoint worker.ts

# The permissions of worker.ts's shebang line. The image's entrypoint (tini) passes SIGTERM on,
# so `docker stop` is a graceful stop: the task in hand is finished and acked.
ENTRYPOINT ["/tini", "--", "deno", "run", "--v8-flags=--max-semi-space-size=2", "--allow-net", "--allow-env=AMQP_URL,AMQP_URL_FILE,AMQP_CA_FILE,TASK_QUEUE_TYPE", "--allow-read", "--allow-run", "--allow-sys=hostname", "worker.ts"]
