from django.urls import path

from . import views

urlpatterns = [
    path("set", views.set_values),
    path("get", views.get),
    path("expiry", views.expiry),
    path("flush", views.flush),
]
