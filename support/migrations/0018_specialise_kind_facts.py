from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0017_specialise_kind"),
    ]

    operations = [
        migrations.AlterField(
            model_name="specialiserun",
            name="kind",
            field=models.CharField(
                choices=[
                    ("retrieval", "Retriever"),
                    ("model", "Chat model"),
                    ("facts", "Fact ranker"),
                ],
                default="retrieval",
                max_length=16,
            ),
        ),
    ]
