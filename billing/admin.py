from django.contrib import admin

from accounts import audit
from accounts.actor import Actor
from billing.models import Product, Rate, UsageBatch


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "unit", "currency", "active"]
    search_fields = ["sku", "name"]


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin):
    """Staff set list prices (no account) and negotiated or custom rates (an account)."""

    list_display = ["product", "account", "unit_price", "effective_from", "created_by"]
    list_filter = ["product"]
    search_fields = ["account__name", "product__sku"]
    raw_id_fields = ["account"]
    readonly_fields = ["created_by", "created_at"]
    list_select_related = ["product", "account", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        # A rate that may already have priced usage is never edited: add a new effective-dated one.
        if obj is not None:
            return ["product", "account", "unit_price", "effective_from", "created_by", "created_at"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if obj.account_id:
            audit.record(
                account=obj.account,
                actor=Actor.platform_staff(request.user),
                change_type="rate.changed",
                resource=obj,
                changes=[
                    {"field": "product", "from": None, "to": obj.product.sku},
                    {"field": "unit_price", "from": None, "to": str(obj.unit_price)},
                    {"field": "effective_from", "from": None, "to": obj.effective_from.isoformat()},
                ],
            )

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageBatch)
class UsageBatchAdmin(admin.ModelAdmin):
    list_display = ["public_id", "submitted_by_account", "source", "accepted", "duplicates", "created_at"]
    list_filter = ["source"]
    readonly_fields = [f.name for f in UsageBatch._meta.fields]

    def has_add_permission(self, request):
        return False
