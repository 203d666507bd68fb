"""The default schedule: sync every advisory feed every 6 hours (editable in the admin)."""

from django.db import migrations

TASK_NAME = "Sync advisory feeds"


def create_schedule(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_6_hours, _ = interval_model.objects.get_or_create(every=6, period="hours")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": "advisories.sync_feeds", "interval": every_6_hours, "queue": "default"},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("advisories", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
