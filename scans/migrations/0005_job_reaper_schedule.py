"""The default schedule of the lease reaper: every minute (editable in the admin)."""

from django.db import migrations

TASK_NAME = "Reap stale scan jobs"


def create_schedule(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        # A reaper message nobody took within its minute is superseded by the next one.
        defaults={"task": "scans.reap_stale_jobs", "interval": every_minute, "queue": "default", "expire_seconds": 60},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scans", "0004_job_lease_failure_kind"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
