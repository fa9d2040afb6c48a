"""CRM sources: pull contacts, companies and deals from HubSpot and Salesforce into identity records."""
