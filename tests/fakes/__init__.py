"""Fake SaaS servers (Google Ads, Meta, Mailchimp, HubSpot, webhook receiver) for destination tests."""
