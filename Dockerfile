# One image for every process; the command picks it: ingest, scoring-worker, scoring-api,
# tagging-worker, tagging-api, campaign-worker, campaign-api, console, topics (services/__main__.py).

# Browser assets (the console's charts, Swagger UI behind every API's /docs), pinned with their
# integrity hashes in web/package-lock.json; no install scripts run (shared/web_assets.py).
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

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
# Only the files the processes serve (VENDOR_FILES in shared/web_assets.py), at their paths under
# node_modules, with the packages' licence notices.
ENV WEB_ASSETS_DIR=/opt/pd/web/node_modules
COPY --from=web /web/node_modules/echarts/dist/echarts.min.js ${WEB_ASSETS_DIR}/echarts/dist/
COPY --from=web /web/node_modules/echarts/LICENSE /web/node_modules/echarts/NOTICE ${WEB_ASSETS_DIR}/echarts/
COPY --from=web /web/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
     /web/node_modules/swagger-ui-dist/swagger-ui.css \
     /web/node_modules/swagger-ui-dist/favicon-32x32.png \
     /web/node_modules/swagger-ui-dist/LICENSE \
     /web/node_modules/swagger-ui-dist/NOTICE ${WEB_ASSETS_DIR}/swagger-ui-dist/
USER app
# Refuse the local stack's secrets and weak ones (shared/settings.py): the image is for real deployments.
ENV PYTHONUNBUFFERED=1 HTTP_HOST=0.0.0.0 DEPLOYMENT=production
ENTRYPOINT ["pd"]
CMD ["ingest"]
