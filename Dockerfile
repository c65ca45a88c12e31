# One image for every process; the command picks it: ingest, scoring-worker, scoring-api,
# tagging-worker, tagging-api, campaign-worker, campaign-api, topics (services/__main__.py).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY stack ./stack
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER app
ENV PYTHONUNBUFFERED=1 HTTP_HOST=0.0.0.0
ENTRYPOINT ["pd"]
CMD ["ingest"]
