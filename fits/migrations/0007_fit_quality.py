"""A verdict on every fit (fits.laws.quality): the columns, and the verdict of every succeeded fit stored before,
computed from the numbers it was stored with (figures it lacks, such as the adjusted R² of log loss, are not
judged)."""

from django.db import migrations, models


def assess(apps, schema_editor):
    from fits.laws.quality import assess_fit

    Fit = apps.get_model("fits", "Fit")
    fields = ("id", "law", "params", "intervals", "metrics", "backtest", "warnings", "data_range")
    for fit in Fit.objects.filter(status="succeeded").only(*fields).iterator(chunk_size=500):
        try:
            verdict = assess_fit(
                law=fit.law,
                params=fit.params or {},
                intervals=fit.intervals or {},
                metrics=fit.metrics or {},
                backtest=fit.backtest or {},
                warnings=fit.warnings or [],
                data_range=fit.data_range or {},
            )
        except (KeyError, TypeError, ValueError):
            continue  # a law no longer in the registry, or numbers of another shape: left without a verdict
        Fit.objects.filter(pk=fit.pk).update(quality=verdict.level, quality_reasons=list(verdict.reasons))


class Migration(migrations.Migration):
    dependencies = [("fits", "0006_density_references")]

    operations = [
        migrations.AddField(
            model_name="fit",
            name="quality",
            field=models.CharField(
                blank=True,
                choices=[("good", "Good"), ("weak", "Weak"), ("unusable", "Unusable")],
                default="",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="fit",
            name="quality_reasons",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(assess, migrations.RunPython.noop),
    ]
