/// The API's OpenAPI 3 document, served without a token at `GET /api/v1/schema/` and
/// checked against the live server by `scripts/fuzz-api` (schemathesis).
enum OpenAPIDocument {
    static let yaml = #"""
        openapi: 3.0.3
        info:
          title: Seed Scheduler
          version: 0.1.0
          description: |
            Scheduled HTTP callbacks: POST a JSON payload to a URL on a crontab, on an interval, or once.
            Compatible with the Seed Scheduler (Django) API. Every endpoint but this document needs
            `Authorization: Token <key>`.
        servers:
          - url: /
        security:
          - token: []
        components:
          securitySchemes:
            token:
              type: apiKey
              in: header
              name: Authorization
              description: "`Token <key>`"
          parameters:
            limit:
              name: limit
              in: query
              required: false
              description: Page size (default PAGE_SIZE, at most MAX_PAGE_SIZE).
              schema: {type: integer, minimum: 1}
            offset:
              name: offset
              in: query
              required: false
              schema: {type: integer, minimum: 0}
            intID:
              name: id
              in: path
              required: true
              schema: {type: integer, minimum: 1}
            scheduleID:
              name: id
              in: path
              required: true
              schema: {type: string, format: uuid}
          headers:
            Location:
              description: The URL of the new schedule.
              required: true
              schema: {type: string, format: uri}
          schemas:
            Detail:
              type: object
              required: [detail]
              properties:
                detail: {type: string}
            FieldErrors:
              type: object
              description: 'Messages by field, for example {"endpoint": ["Enter a valid URL."]}.'
              additionalProperties:
                type: array
                items: {type: string}
            PageLinks:
              type: object
              required: [count, next, previous, results]
              properties:
                count: {type: integer, minimum: 0}
                next: {type: string, format: uri, nullable: true}
                previous: {type: string, format: uri, nullable: true}
            ScheduleWrite:
              type: object
              properties:
                frequency:
                  type: integer
                  minimum: 1
                  maximum: 2147483647
                  nullable: true
                  description: Run this many times in all, then disable.
                cron_definition:
                  type: string
                  nullable: true
                  maxLength: 256
                  example: "0 9 * * mon"
                  description: Five crontab fields and an optional year, or @yearly/@monthly/@weekly/@daily/@hourly.
                interval_definition:
                  type: string
                  nullable: true
                  maxLength: 256
                  example: "5 minutes"
                  description: "<integer> <period>, period one of days, hours, minutes, seconds, microseconds."
                timezone:
                  type: string
                  example: Europe/London
                  description: IANA zone the crontab is read in (default UTC).
                endpoint:
                  type: string
                  format: uri
                  maxLength: 2048
                  example: https://receiver.example.org/hook
                payload:
                  description: Any JSON; POSTed as the body.
                auth_token:
                  type: string
                  nullable: true
                  maxLength: 1024
                next_send_at:
                  type: string
                  format: date-time
                  nullable: true
                enabled:
                  type: boolean
            ScheduleCreate:
              allOf:
                - $ref: '#/components/schemas/ScheduleWrite'
                - type: object
                  required: [endpoint]
            Schedule:
              type: object
              required: [url, id, frequency, triggered, cron_definition, interval_definition, timezone, endpoint, payload,
                         auth_token, next_send_at, enabled, created_at, created_by, updated_at, updated_by,
                         disabled_reason]
              properties:
                url: {type: string, format: uri}
                id: {type: string, format: uuid}
                frequency: {type: integer, nullable: true}
                triggered: {type: integer, minimum: 0}
                cron_definition: {type: string, nullable: true}
                interval_definition: {type: string, nullable: true}
                timezone: {type: string}
                endpoint: {type: string}
                payload: {nullable: true}
                auth_token: {type: string, nullable: true}
                next_send_at: {type: string, format: date-time, nullable: true}
                enabled: {type: boolean}
                created_at: {type: string, format: date-time}
                created_by: {type: string, format: uri, nullable: true}
                updated_at: {type: string, format: date-time}
                updated_by: {type: string, format: uri, nullable: true}
                disabled_reason:
                  type: string
                  nullable: true
                  description: Why beat disabled the schedule (its next run could not be computed); cleared when it is enabled again or its definition changes.
            SchedulePage:
              allOf:
                - $ref: '#/components/schemas/PageLinks'
                - type: object
                  properties:
                    results:
                      type: array
                      items: {$ref: '#/components/schemas/Schedule'}
            User:
              type: object
              required: [url, username, email, groups]
              properties:
                url: {type: string, format: uri}
                username: {type: string}
                email: {type: string}
                groups:
                  type: array
                  items: {type: string, format: uri}
            UserPage:
              allOf:
                - $ref: '#/components/schemas/PageLinks'
                - type: object
                  properties:
                    results:
                      type: array
                      items: {$ref: '#/components/schemas/User'}
            Group:
              type: object
              required: [url, name]
              properties:
                url: {type: string, format: uri}
                name: {type: string}
            GroupPage:
              allOf:
                - $ref: '#/components/schemas/PageLinks'
                - type: object
                  properties:
                    results:
                      type: array
                      items: {$ref: '#/components/schemas/Group'}
            WebhookWrite:
              type: object
              properties:
                event:
                  type: string
                  enum: [schedule.added]
                target:
                  type: string
                  format: uri
                  maxLength: 2048
            Webhook:
              type: object
              required: [id, created, updated, user, event, target]
              properties:
                id: {type: integer}
                created: {type: string, format: date-time}
                updated: {type: string, format: date-time}
                user: {type: integer}
                event: {type: string}
                target: {type: string}
            WebhookPage:
              allOf:
                - $ref: '#/components/schemas/PageLinks'
                - type: object
                  properties:
                    results:
                      type: array
                      items: {$ref: '#/components/schemas/Webhook'}
            Health:
              type: object
              required: [up, result]
              properties:
                up: {type: boolean}
                result:
                  type: object
                  required: [database, broker, version]
                  properties:
                    database: {type: string}
                    broker: {type: string}
                    version: {type: string}
          responses:
            BadRequest:
              description: Invalid input; messages by field, or a detail for unreadable JSON.
              content:
                application/json:
                  schema:
                    oneOf:
                      - $ref: '#/components/schemas/FieldErrors'
                      - $ref: '#/components/schemas/Detail'
            Unauthorized:
              description: No token, or a wrong one.
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
            Forbidden:
              description: Only an admin may do this.
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
            NotFound:
              description: No such resource (or a malformed id).
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
            TooLarge:
              description: The body is larger than MAX_BODY_BYTES.
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
            MethodNotAllowed:
              description: The path does not take this method.
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
            Unavailable:
              description: The database cannot be reached; try again.
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Detail'}
        paths:
          /api/v1/schema/:
            get:
              summary: This document.
              security: []
              responses:
                '200':
                  description: The OpenAPI document, in YAML.
                  content:
                    application/yaml:
                      schema: {type: string}
          /api/v1/user/token/:
            post:
              summary: Create a user for an email if new, and return its token (admins only).
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [email]
                      properties:
                        email: {type: string, format: email}
              responses:
                '201':
                  description: The token (the same one for the same email each time).
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [token]
                        properties:
                          token: {type: string}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '403': {$ref: '#/components/responses/Forbidden'}
                '405': {$ref: '#/components/responses/MethodNotAllowed'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/user/:
            get:
              summary: List users.
              parameters:
                - $ref: '#/components/parameters/limit'
                - $ref: '#/components/parameters/offset'
              responses:
                '200':
                  description: A page of users.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/UserPage'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/user/{id}/:
            get:
              summary: One user.
              parameters:
                - $ref: '#/components/parameters/intID'
              responses:
                '200':
                  description: The user.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/User'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/group/:
            get:
              summary: List groups.
              parameters:
                - $ref: '#/components/parameters/limit'
                - $ref: '#/components/parameters/offset'
              responses:
                '200':
                  description: A page of groups.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/GroupPage'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/group/{id}/:
            get:
              summary: One group.
              parameters:
                - $ref: '#/components/parameters/intID'
              responses:
                '200':
                  description: The group.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Group'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/schedule/:
            get:
              summary: List schedules, newest first.
              parameters:
                - $ref: '#/components/parameters/limit'
                - $ref: '#/components/parameters/offset'
                - name: enabled
                  in: query
                  required: false
                  schema: {type: boolean}
                - name: endpoint
                  in: query
                  required: false
                  schema: {type: string}
              responses:
                '200':
                  description: A page of schedules.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/SchedulePage'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '503': {$ref: '#/components/responses/Unavailable'}
            post:
              summary: Create a schedule.
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/ScheduleCreate'}
              responses:
                '201':
                  description: Created.
                  headers:
                    Location: {$ref: '#/components/headers/Location'}
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Schedule'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/schedule/{id}/:
            parameters:
              - $ref: '#/components/parameters/scheduleID'
            get:
              summary: One schedule.
              responses:
                '200':
                  description: The schedule.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Schedule'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
            put:
              summary: Replace a schedule (endpoint required; omitted fields keep their values).
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/ScheduleCreate'}
              responses:
                '200':
                  description: Updated.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Schedule'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
            patch:
              summary: Change some fields of a schedule.
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/ScheduleWrite'}
              responses:
                '200':
                  description: Updated.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Schedule'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
            delete:
              summary: Delete a schedule.
              responses:
                '204': {description: Deleted.}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/webhook/:
            get:
              summary: List the caller's webhooks.
              parameters:
                - $ref: '#/components/parameters/limit'
                - $ref: '#/components/parameters/offset'
              responses:
                '200':
                  description: A page of webhooks.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/WebhookPage'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '503': {$ref: '#/components/responses/Unavailable'}
            post:
              summary: Subscribe to an event.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      allOf:
                        - $ref: '#/components/schemas/WebhookWrite'
                        - type: object
                          required: [event, target]
              responses:
                '201':
                  description: Created.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Webhook'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/v1/webhook/{id}/:
            parameters:
              - $ref: '#/components/parameters/intID'
            get:
              summary: One of the caller's webhooks.
              responses:
                '200':
                  description: The webhook.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Webhook'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
            put:
              summary: Replace a webhook.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      allOf:
                        - $ref: '#/components/schemas/WebhookWrite'
                        - type: object
                          required: [event, target]
              responses:
                '200':
                  description: Updated.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Webhook'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
            patch:
              summary: Change a webhook.
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/WebhookWrite'}
              responses:
                '200':
                  description: Updated.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Webhook'}
                '400': {$ref: '#/components/responses/BadRequest'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '413': {$ref: '#/components/responses/TooLarge'}
                '503': {$ref: '#/components/responses/Unavailable'}
            delete:
              summary: Delete a webhook.
              responses:
                '204': {description: Deleted.}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '404': {$ref: '#/components/responses/NotFound'}
                '503': {$ref: '#/components/responses/Unavailable'}
          /api/health/:
            get:
              summary: Whether the database and the broker can be reached.
              responses:
                '200':
                  description: Everything is reachable.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Health'}
                '401': {$ref: '#/components/responses/Unauthorized'}
                '503':
                  description: Something is not reachable; `result` says what.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Health'}
          /api/metrics/:
            get:
              summary: The metric keys this service provides.
              responses:
                '200':
                  description: The keys.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [metrics_available]
                        properties:
                          metrics_available:
                            type: array
                            items: {type: string}
                '401': {$ref: '#/components/responses/Unauthorized'}
            post:
              summary: Start a push of the metrics to the Go Metrics API (METRICS_URL).
              responses:
                '201':
                  description: Started.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [scheduled_metrics_initiated]
                        properties:
                          scheduled_metrics_initiated: {type: boolean}
                '401': {$ref: '#/components/responses/Unauthorized'}
        """#
}
