import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def trained_at_from_created_at(apps, schema_editor):
    """Runs registered before trained_at existed were trained, as far as anyone knows, when they were registered."""
    Run = apps.get_model("runs", "Run")
    Run.objects.filter(trained_at__isnull=True).update(trained_at=F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0002_run_float_format"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="trained_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(trained_at_from_created_at, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="run",
            name="trained_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["team", "-trained_at", "-id"], name="run_team_trained"),
        ),
    ]
