# The gateway image: slim Python, non-root, uvicorn with uvloop/httptools, a health check.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app ./app

RUN useradd --system --uid 10001 gateway
USER gateway

ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/health/live', timeout=2)"

# One worker per container: scale with replicas behind the load balancer. `python -m app` runs
# uvicorn (uvloop, httptools) with JSON logs and a graceful shutdown that gives in-flight requests
# the retry budget (about 6 s) to finish on SIGTERM.
CMD ["python", "-m", "app"]
