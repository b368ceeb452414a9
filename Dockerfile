# One image for every gridgate process (api, worker, head-end, migrations); the command selects it.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gridgate gridgate
COPY api api
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY headend headend
COPY pki pki
COPY simulator simulator
COPY worker.py ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/gridgate --create-home gridgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER gridgate
WORKDIR /var/lib/gridgate
ENV GRIDGATE_MODE=production \
    GRIDGATE_VAR_DIR=/var/lib/gridgate/var \
    GRIDGATE_LOG_FORMAT=json
ENTRYPOINT ["gridgate"]
CMD ["api", "--host", "0.0.0.0"]
