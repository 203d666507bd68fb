import fnmatch

from django.db import models

from scans import crypto


class Registry(models.Model):
    """A registry Vigil may pull from; webhooks name it by its secret."""

    name = models.SlugField(max_length=100, unique=True)
    url = models.URLField(help_text="Base URL, e.g. https://registry.example.com or http://127.0.0.1:5000")
    username = models.CharField(max_length=255, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    repositories = models.JSONField(
        default=list,
        blank=True,
        help_text='Repositories to watch, as shell patterns ("team/*"); empty watches none.',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "registries"

    def __str__(self) -> str:
        return self.name

    @property
    def password(self) -> str:
        return crypto.decrypt(self.password_encrypted)

    @password.setter
    def password(self, value: str) -> None:
        self.password_encrypted = crypto.encrypt(value)

    @property
    def webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted)

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(value)

    @property
    def insecure(self) -> bool:
        return self.url.startswith("http://")

    def watches(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, pattern) for pattern in self.repositories)


class Repository(models.Model):
    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="repository_set")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "repositories"
        constraints = [models.UniqueConstraint(fields=["registry", "name"], name="unique_repository_per_registry")]

    def __str__(self) -> str:
        return f"{self.registry.name}/{self.name}"
