"""Plans record how their bit widths were decided (the meaningful-difference rule) and where the recommendation
sits against the fit's runs; plans made before keep null."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("planner", "0006_laws_from_registry")]

    operations = [
        migrations.AddField(model_name="plan", name="precision_choice", field=models.JSONField(blank=True, null=True)),
        migrations.AddField(model_name="plan", name="data_range", field=models.JSONField(blank=True, null=True)),
    ]
