# Failure safety (issue 6): a lease on every scan job for the reaper, the kind of
# failure (sticky ones stop a poison image from looping), per-size time limits,
# and the push time that orders tag moves.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scans", "0003_sbom_images"),
    ]

    operations = [
        migrations.AddField(
            model_name="scanjob",
            name="failure",
            field=models.CharField(
                blank=True,
                choices=[
                    ("registry", "Registry"),
                    ("image", "Image"),
                    ("timeout", "Timeout"),
                    ("worker_lost", "Worker Lost"),
                    ("internal", "Internal"),
                ],
                help_text="What failed; sticky kinds wait for a forced scan",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="scanjob",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="scanjob",
            name="lease_owner",
            field=models.CharField(
                blank=True,
                help_text="The worker holding the lease (host, pid, token); fences late writes",
                max_length=128,
            ),
        ),
        migrations.AddField(
            model_name="scanjob",
            name="lost_workers",
            field=models.PositiveIntegerField(default=0, help_text="How often its worker died mid-scan"),
        ),
        migrations.AddField(
            model_name="scanjob",
            name="image_size",
            field=models.BigIntegerField(blank=True, help_text="Compressed size from the manifest, bytes", null=True),
        ),
        migrations.AddField(
            model_name="scanjob",
            name="time_limit",
            field=models.PositiveIntegerField(
                blank=True, help_text="Seconds allowed for this image's size", null=True
            ),
        ),
        migrations.AddField(
            model_name="tag",
            name="pushed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
