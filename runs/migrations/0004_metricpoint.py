import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0003_run_trained_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricPoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=250)),
                ("value", models.FloatField(help_text="NULL is NaN.", null=True)),
                ("step", models.BigIntegerField(default=0)),
                ("timestamp", models.BigIntegerField(help_text="Milliseconds since the Unix epoch, as MLflow logs it.")),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="metric_points", to="runs.run"
                    ),
                ),
            ],
            options={
                "ordering": ["run_id", "key", "step", "timestamp", "id"],
                "indexes": [
                    models.Index(fields=["run", "key", "step", "timestamp"], name="metricpoint_run_key_step")
                ],
            },
        ),
    ]
