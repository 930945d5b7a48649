"""Indexes that every message insert and conversation update maintained for nothing.

- The foreign keys `conversation.channel`, `conversation.assigned_to` and
  `message.conversation` had an index of their own, each covered by a wider index that
  leads with the same column (the unique (channel, profile) constraint, conv_assigned_idx,
  msg_thread_idx). Only the index is dropped: the foreign key constraints stay as they are
  (Django's AlterField would drop and re-validate them over the whole table).
- `message.sent_by` and `message.bot_config_version` are empty on every customer message:
  their indexes now hold only the rows where they are set.
- `message.wamid` and `statusupdate.wamid` had, beside their index, the LIKE index Django
  adds for a CharField; no query does LIKE on a wamid. The wamid is unique through a
  named constraint now (the same unique index for deduplication and ON CONFLICT).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Django's names for the foreign keys' own indexes (the same on PostgreSQL and SQLite).
FK_INDEXES = [
    ("conversations_conversation", "assigned_to_id", "conversations_conversation_assigned_to_id_327a1b36"),
    ("conversations_conversation", "channel_id", "conversations_conversation_channel_id_c75ad9c1"),
    ("conversations_message", "conversation_id", "conversations_message_conversation_id_f1a2d5e9"),
    ("conversations_message", "sent_by_id", "conversations_message_sent_by_id_853eaa63"),
    ("conversations_message", "bot_config_version_id", "conversations_message_bot_config_version_id_83319ccd"),
]


def _fk_index_drop(table: str, column: str, name: str) -> migrations.RunSQL:
    return migrations.RunSQL(
        sql=f'DROP INDEX IF EXISTS "{name}"',
        reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
    )


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0003_bot_config_one_default'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[_fk_index_drop(*index) for index in FK_INDEXES],
            state_operations=[
                migrations.AlterField(
                    model_name='conversation',
                    name='assigned_to',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='assigned_conversations', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='conversation',
                    name='channel',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='conversations', to='conversations.channel'),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='conversation',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='conversations.conversation'),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='sent_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='bot_config_version',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='messages', to='conversations.botconfigversion'),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('sent_by__isnull', False)), fields=['sent_by'], name='msg_sent_by_idx'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('bot_config_version__isnull', False)), fields=['bot_config_version'], name='msg_bot_config_version_idx'),
        ),
        migrations.AlterField(
            model_name='message',
            name='wamid',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name='statusupdate',
            name='wamid',
            field=models.CharField(max_length=255),
        ),
        migrations.AddIndex(
            model_name='statusupdate',
            index=models.Index(fields=['wamid'], name='status_wamid_idx'),
        ),
        migrations.AddConstraint(
            model_name='message',
            constraint=models.UniqueConstraint(fields=('wamid',), name='message_wamid_uniq'),
        ),
    ]
