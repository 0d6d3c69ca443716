"""Alibaba IoT Living Platform app API (``/awss/…``, ``/thing/…``, ``/living/home/…``, ``/uc/…``, ``/account/…``)."""
