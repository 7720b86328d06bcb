"""Fit, FitScope and FitChunk now belong to the fits app: plans point at fits.Fit, and planner's state drops the
three models. The database is untouched (the same tables, renamed by fits 0002)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("fits", "0001_initial"),
        ("planner", "0004_law_fp"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
            migrations.RemoveField(
                model_name='fit',
                name='team',
            ),
            migrations.AlterField(
                model_name='plan',
                name='fit',
                field=models.ForeignKey(on_delete=django.db.models.deletion.RESTRICT, related_name='plans', to='fits.fit'),
            ),
            migrations.RemoveField(
                model_name='fitscope',
                name='team',
            ),
            migrations.DeleteModel(
                name='FitChunk',
            ),
            migrations.DeleteModel(
                name='Fit',
            ),
            migrations.DeleteModel(
                name='FitScope',
            ),
            ],
        ),
    ]
