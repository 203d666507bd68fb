from django.contrib import admin

from advisories.models import Advisory, Affected, Alias, Epss, FeedSync, Kev, Severity


@admin.register(FeedSync)
class FeedSyncAdmin(admin.ModelAdmin):
    list_display = ["feed", "state", "started_at", "duration", "added", "updated", "removed", "withdrawn", "rejected"]
    list_filter = ["state", "source"]
    search_fields = ["feed", "error"]
    readonly_fields = [f.name for f in FeedSync._meta.fields]


class AliasInline(admin.TabularInline):
    model = Alias
    extra = 0


class AffectedInline(admin.TabularInline):
    model = Affected
    extra = 0


class SeverityInline(admin.TabularInline):
    model = Severity
    extra = 0


@admin.register(Advisory)
class AdvisoryAdmin(admin.ModelAdmin):
    list_display = ["advisory_id", "source", "summary", "modified", "withdrawn"]
    list_filter = ["source"]
    search_fields = ["advisory_id", "alias_set__alias", "affected__package"]
    inlines = [AliasInline, SeverityInline, AffectedInline]


@admin.register(Kev)
class KevAdmin(admin.ModelAdmin):
    list_display = ["cve_id", "vendor", "product", "date_added", "known_ransomware"]
    search_fields = ["cve_id", "vendor", "product"]


@admin.register(Epss)
class EpssAdmin(admin.ModelAdmin):
    list_display = ["cve_id", "score", "percentile", "date"]
    search_fields = ["cve_id"]
