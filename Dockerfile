# QbD DoE workbench: the Streamlit app with the production configuration.
#   docker build -t doe-workbench .
#   docker run --rm -p 8501:8501 -v doe-data:/data doe-workbench     # one user, SQLite in /data
# A site deployment (PostgreSQL, two replicas, proxy): deploy/docker-compose.yml and docs/DEPLOY.md;
# it sets DOE_DEPLOYMENT=site, and then the app refuses to start without sign-in ([auth] in secrets.toml).
FROM python:3.11-slim

# BROWSER_PATH: the Chromium kaleido drives for PNG/SVG export of figures.
# DOE_DATA_DIR: where the SQLite file lives when DATABASE_URL is not set.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BROWSER_PATH=/usr/bin/chromium \
    DOE_DATA_DIR=/data

# Chromium from Debian for kaleido; curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements.lock ./
# Exactly the versions tested (requirements.lock, made by deploy/lock.py); streamlit[auth] brings
# Authlib, which st.login (OpenID Connect sign-in) needs.
RUN pip install -r requirements.txt -c requirements.lock

RUN useradd --create-home --uid 10001 --user-group doe \
    && mkdir -p /data \
    && chown doe:doe /data

# The code belongs to root and is read-only for the app user.
COPY app.py ./
COPY doe ./doe
COPY pages ./pages
COPY data ./data
COPY deploy/streamlit-config.toml ./.streamlit/config.toml

USER doe
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD curl -fsS http://localhost:8501/_stcore/health || exit 1

CMD ["streamlit", "run", "app.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
