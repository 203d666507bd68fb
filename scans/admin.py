from django import forms
from django.contrib import admin

from scans.models import Image, ImageLayer, Package, Registry, Repository, ScanJob, Tag, TagEvent


class RegistryForm(forms.ModelForm):
    url = forms.URLField(assume_scheme="https", help_text="Base URL, e.g. https://registry.example.com")
    password = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave empty to keep the stored one."
    )
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The registry sends it as `Authorization: Bearer <secret>`. Leave empty to keep the stored one.",
    )

    class Meta:
        model = Registry
        fields = ["name", "url", "username", "repositories"]

    def save(self, commit: bool = True) -> Registry:
        registry: Registry = super().save(commit=False)
        if self.cleaned_data.get("password"):
            registry.password = self.cleaned_data["password"]
        if self.cleaned_data.get("webhook_secret"):
            registry.webhook_secret = self.cleaned_data["webhook_secret"]
        if commit:
            registry.save()
        return registry


@admin.register(Registry)
class RegistryAdmin(admin.ModelAdmin):
    form = RegistryForm
    list_display = ["name", "url", "username", "repositories", "created_at"]
    search_fields = ["name", "url"]


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ["name", "registry", "created_at"]
    list_filter = ["registry"]
    search_fields = ["name"]


class LayerInline(admin.TabularInline):
    model = ImageLayer
    extra = 0
    can_delete = False
    readonly_fields = ["index", "digest", "diff_id", "media_type", "size"]


class TagInline(admin.TabularInline):
    model = Tag
    extra = 0
    readonly_fields = ["repository", "name", "updated_at"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["digest", "kind", "os_pretty_name", "platform", "analyzed_at"]
    list_filter = ["kind", "os_id", "platform"]
    search_fields = ["digest", "manifest_digest", "tags__name", "tags__repository__name"]
    readonly_fields = [f.name for f in Image._meta.fields]
    inlines = [TagInline, LayerInline]


@admin.register(ScanJob)
class ScanJobAdmin(admin.ModelAdmin):
    list_display = ["id", "reference", "state", "attempts", "created_at", "started_at", "finished_at"]
    list_filter = ["state"]
    search_fields = ["reference", "image__digest", "reason"]
    readonly_fields = [
        "image",
        "repository",
        "reference",
        "reason",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    ]


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "type", "arch", "source_name", "image"]
    list_filter = ["type"]
    search_fields = ["name", "purl", "source_name"]
    list_select_related = ["image"]


@admin.register(TagEvent)
class TagEventAdmin(admin.ModelAdmin):
    list_display = ["tag", "image", "seen_at"]
    list_select_related = ["tag__repository", "image"]
