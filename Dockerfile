# One image for web, worker and beat (docker-compose.yml): the source tree as it is, minus .dockerignore, so no
# package can be left out. tests/config/test_image.py assembles the same file set and runs these steps.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app DJANGO_SETTINGS_MODULE=config.settings.production
WORKDIR /app
# Dependencies first, in a layer that survives code changes: pyproject's [project] dependencies, pinned by
# constraints.txt. The code itself is not pip-installed: it runs from /app (PYTHONPATH), one copy only.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
COPY . .
# Static files are collected at build time (WhiteNoise serves them); the settings need values, not services.
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.db CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bitscale
# The code and static files stay root-owned and read-only to the processes; they write only to /tmp.
USER bitscale
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
