"""The default schedule of risk-acceptance expiry: daily, just after midnight (editable in the admin)."""

from django.db import migrations

TASK_NAME = "Expire risk acceptances"


def create_schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    # The server's time zone: an acceptance "until" a day lasts through that day there.
    daily, _ = crontab_model.objects.get_or_create(
        minute="5", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": "scans.expire_risk_acceptances", "crontab": daily, "queue": "default"},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scans", "0006_triage_decisions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
