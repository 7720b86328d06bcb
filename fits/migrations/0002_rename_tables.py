"""Rename the moved tables to the fits app's names (planner_fit -> fits_fit, ...); rows, ids, constraints and
indexes are kept."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("fits", "0001_initial"),
        ("planner", "0005_move_fits"),
    ]

    operations = [
        migrations.AlterModelTable(name="fit", table=None),
        migrations.AlterModelTable(name="fitscope", table=None),
        migrations.AlterModelTable(name="fitchunk", table=None),
    ]
