# Vigil's image: web (gunicorn), Celery worker and beat all run from it (docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --create-home --home-dir /var/lib/vigil vigil
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Static files are collected at build time, for a reverse proxy to serve (README, "Production").
RUN python manage.py collectstatic --noinput --verbosity 0
USER vigil
ENV VIGIL_WORK_DIR=/var/lib/vigil/work
EXPOSE 8000
CMD ["gunicorn", "scanner_service.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
