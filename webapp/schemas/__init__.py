"""The shapes of what the API accepts and answers, written once (pydantic models), with the limits and name rules
they share. HTTP-free and below api, ui and services: the API validates request bodies with these models
(webapp.schemas.validation.parse), /api/v1/openapi.json is generated from their JSON Schema, the website's forms
and the services take their limits from webapp.schemas.limits."""
