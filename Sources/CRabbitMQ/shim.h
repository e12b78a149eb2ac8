#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H
// Debian 12's librabbitmq-dev installs <amqp.h>; newer releases <rabbitmq-c/amqp.h>.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif
#include <string.h>

// Small typed entry points for what Swift cannot call or build directly: the variadic
// amqp_login, and argument tables (a C union array) for declares and message headers.

/// A table entry: a UTF-8 string when `is_string`, else a signed 64-bit integer.
typedef struct {
    const char *key;
    int is_string;
    const char *string;
    long long number;
} shim_field;

/// Logs in saying the client takes basic.cancel from the broker (consumer_cancel_notify):
/// without it a consumer the broker ends (its queue deleted, a quorum queue's node gone) just
/// stops receiving, with no word; with it, the consumer hears of it and can consume again.
/// librabbitmq merges these with its default client properties.
static inline amqp_rpc_reply_t shim_login(amqp_connection_state_t state, const char *vhost, int heartbeat,
                                          const char *user, const char *password) {
    amqp_table_entry_t capabilities[2];
    capabilities[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    capabilities[1].key = amqp_cstring_bytes("authentication_failure_close");
    capabilities[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[1].value.value.boolean = 1;
    amqp_table_entry_t properties[2];
    properties[0].key = amqp_cstring_bytes("capabilities");
    properties[0].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[0].value.value.table.num_entries = 2;
    properties[0].value.value.table.entries = capabilities;
    properties[1].key = amqp_cstring_bytes("product");
    properties[1].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[1].value.value.bytes = amqp_cstring_bytes("seed-scheduler");
    amqp_table_t table = {2, properties};
    return amqp_login_with_properties(state, vhost, 0, 131072, heartbeat, &table, AMQP_SASL_METHOD_PLAIN, user, password);
}

static inline void shim_fill_table(amqp_table_entry_t *entries, const shim_field *fields, int count) {
    for (int i = 0; i < count; i++) {
        entries[i].key = amqp_cstring_bytes(fields[i].key);
        if (fields[i].is_string) {
            entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
            entries[i].value.value.bytes = amqp_cstring_bytes(fields[i].string);
        } else {
            entries[i].value.kind = AMQP_FIELD_KIND_I64;
            entries[i].value.value.i64 = fields[i].number;
        }
    }
}

/// queue.declare with arguments; the counts are filled on success (NULL reply otherwise).
static inline int shim_queue_declare(amqp_connection_state_t state, amqp_channel_t channel, const char *queue,
                                     int passive, int durable, const shim_field *fields, int count,
                                     unsigned int *messages, unsigned int *consumers) {
    amqp_table_entry_t entries[count > 0 ? count : 1];
    shim_fill_table(entries, fields, count);
    amqp_table_t table = {count, entries};
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(state, channel, amqp_cstring_bytes(queue), passive, durable,
                                                     0, 0, table);
    if (ok == NULL) return 0;
    *messages = ok->message_count;
    *consumers = ok->consumer_count;
    return 1;
}

static inline int shim_exchange_declare(amqp_connection_state_t state, amqp_channel_t channel, const char *exchange,
                                        const char *type, int durable) {
    return amqp_exchange_declare(state, channel, amqp_cstring_bytes(exchange), amqp_cstring_bytes(type), 0,
                                 durable, 0, 0, amqp_empty_table) != NULL;
}

static inline int shim_queue_bind(amqp_connection_state_t state, amqp_channel_t channel, const char *queue,
                                  const char *exchange, const char *routing_key) {
    return amqp_queue_bind(state, channel, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                           amqp_cstring_bytes(routing_key), amqp_empty_table) != NULL;
}

/// A persistent JSON message with a message id, an optional expiration and headers.
static inline int shim_publish(amqp_connection_state_t state, amqp_channel_t channel, const char *exchange,
                               const char *routing_key, int mandatory, const void *body, size_t length,
                               const char *message_id, const char *expiration,
                               const shim_field *headers, int count) {
    amqp_table_entry_t entries[count > 0 ? count : 1];
    shim_fill_table(entries, headers, count);
    amqp_basic_properties_t properties;
    memset(&properties, 0, sizeof properties);
    properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    properties.content_type = amqp_cstring_bytes("application/json");
    properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    properties.headers.num_entries = count;
    properties.headers.entries = entries;
    if (message_id != NULL) {
        properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        properties.message_id = amqp_cstring_bytes(message_id);
    }
    if (expiration != NULL) {
        properties._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        properties.expiration = amqp_cstring_bytes(expiration);
    }
    amqp_bytes_t bytes = {length, (void *)body};
    return amqp_basic_publish(state, channel, amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key),
                              mandatory, 0, &properties, bytes);
}

static inline int shim_basic_consume(amqp_connection_state_t state, amqp_channel_t channel, const char *queue) {
    return amqp_basic_consume(state, channel, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                              amqp_empty_table) != NULL;
}

#endif
