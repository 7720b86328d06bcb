"""Fit, FitScope and FitChunk move here from the planner app, keeping their rows.

The tables were created by planner's migrations; this migration only takes the models into the fits app's state
(the database is untouched), and moves their content types so permissions and admin history follow them.
0002 then renames the tables to the fits app's names.
"""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("fit", "fitscope", "fitchunk")


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="fits", model=model).exists():
            ContentType.objects.filter(app_label="planner", model=model).update(app_label="fits")


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="planner", model=model).exists():
            ContentType.objects.filter(app_label="fits", model=model).update(app_label="planner")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("runs", "0002_run_float_format"),
        ("planner", "0004_law_fp"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
            migrations.CreateModel(
                name='Fit',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('family', models.SlugField(max_length=100)),
                    ('law', models.CharField(choices=[('chinchilla', 'Chinchilla'), ('precision', 'Precision (Kumar et al.)'), ('fp', 'Floating point (Sun et al.)')], max_length=20)),
                    ('version', models.PositiveIntegerField()),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=20)),
                    ('objective', models.CharField(default='huber', max_length=20)),
                    ('n_bootstrap', models.PositiveIntegerField(default=200)),
                    ('chunk_size', models.PositiveIntegerField(default=25)),
                    ('run_ids', models.JSONField(default=list)),
                    ('snapshot', models.BinaryField(blank=True, null=True)),
                    ('data_fingerprint', models.CharField(blank=True, max_length=64)),
                    ('code_version', models.CharField(blank=True, max_length=50)),
                    ('params', models.JSONField(default=dict)),
                    ('intervals', models.JSONField(default=dict)),
                    ('fixed', models.JSONField(default=dict)),
                    ('metrics', models.JSONField(default=dict)),
                    ('backtest', models.JSONField(default=dict)),
                    ('warnings', models.JSONField(default=list)),
                    ('data_range', models.JSONField(default=dict)),
                    ('draw_names', models.JSONField(default=list)),
                    ('draws', models.BinaryField(blank=True, null=True)),
                    ('error', models.TextField(blank=True)),
                    ('point_state', models.BinaryField(blank=True, null=True)),
                    ('attempt', models.PositiveIntegerField(default=0)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fits', to='runs.team')),
                ],
                options={
                    'db_table': 'planner_fit',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='FitChunk',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('index', models.PositiveIntegerField()),
                    ('draws', models.BinaryField()),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('fit', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chunks', to='fits.fit')),
                ],
                options={
                    'db_table': 'planner_fitchunk',
                    'ordering': ['fit_id', 'index'],
                },
            ),
            migrations.CreateModel(
                name='FitScope',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('family', models.SlugField(max_length=100)),
                    ('law', models.CharField(choices=[('chinchilla', 'Chinchilla'), ('precision', 'Precision (Kumar et al.)'), ('fp', 'Floating point (Sun et al.)')], max_length=20)),
                    ('generation', models.PositiveBigIntegerField(default=0)),
                    ('dirty_since', models.DateTimeField(blank=True, null=True)),
                    ('last_change_at', models.DateTimeField(blank=True, null=True)),
                    ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                    ('fingerprint', models.CharField(blank=True, max_length=64)),
                    ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fit_scopes', to='runs.team')),
                ],
                options={
                    'db_table': 'planner_fitscope',
                    'ordering': ['team_id', 'family', 'law'],
                },
            ),
            migrations.AddIndex(
                model_name='fit',
                index=models.Index(fields=['team', 'family', 'law', '-version'], name='fit_scope_latest'),
            ),
            migrations.AddIndex(
                model_name='fit',
                index=models.Index(fields=['status', 'heartbeat_at'], name='fit_status_heartbeat'),
            ),
            migrations.AddConstraint(
                model_name='fit',
                constraint=models.UniqueConstraint(fields=('team', 'family', 'law', 'version'), name='fit_version_unique'),
            ),
            migrations.AddConstraint(
                model_name='fit',
                constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['queued', 'running'])), fields=('team', 'family', 'law'), name='fit_one_active_per_scope'),
            ),
            migrations.AddConstraint(
                model_name='fit',
                constraint=models.CheckConstraint(condition=models.Q(('law__in', ['chinchilla', 'precision', 'fp'])), name='fit_law_valid'),
            ),
            migrations.AddConstraint(
                model_name='fit',
                constraint=models.CheckConstraint(condition=models.Q(('status__in', ['queued', 'running', 'succeeded', 'failed'])), name='fit_status_valid'),
            ),
            migrations.AddConstraint(
                model_name='fitchunk',
                constraint=models.UniqueConstraint(fields=('fit', 'index'), name='fit_chunk_unique'),
            ),
            migrations.AddIndex(
                model_name='fitscope',
                index=models.Index(fields=['dirty_since'], name='fit_scope_dirty'),
            ),
            migrations.AddConstraint(
                model_name='fitscope',
                constraint=models.UniqueConstraint(fields=('team', 'family', 'law'), name='fit_scope_unique'),
            ),
            migrations.AddConstraint(
                model_name='fitscope',
                constraint=models.CheckConstraint(condition=models.Q(('law__in', ['chinchilla', 'precision', 'fp'])), name='fit_scope_law_valid'),
            ),
            ],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
