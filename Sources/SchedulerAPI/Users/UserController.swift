import Hummingbird
import SchedulerCore
import SchedulerStore

/// `/api/v1/user/`, `/api/v1/group/` and `POST /api/v1/user/token/`.
struct UserController: Sendable {
    let store: UserStore
    let settings: APISettings

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/user/", [.get: listUsers])
        group.resource("v1/user/token/", [.post: createToken])
        group.resource("v1/user/:id/", [.get: retrieveUser])
        group.resource("v1/group/", [.get: listGroups])
        group.resource("v1/group/:id/", [.get: retrieveGroup])
    }

    @Sendable func listUsers(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let only = try context.owner()
        return try await Pagination.response(to: request, settings: settings) {
            try await store.users(only: only, limit: $0, offset: $1)
        } render: {
            json($0, $1)
        }
    }

    @Sendable func retrieveUser(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let id = try context.parameters.int64ID()
        // A normal user sees only themselves; another's id is not found.
        if let only = try context.owner(), only != id { throw APIError.notFound }
        guard let user = try await store.user(id: id) else { throw APIError.notFound }
        return JSONResponse.make(body: json(user, Links(request: request, settings: settings)))
    }

    @Sendable func listGroups(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        try await Pagination.response(to: request, settings: settings) {
            try await store.groups(limit: $0, offset: $1)
        } render: {
            json($0, $1)
        }
    }

    @Sendable func retrieveGroup(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard let group = try await store.group(id: try context.parameters.int64ID()) else { throw APIError.notFound }
        return JSONResponse.make(body: json(group, Links(request: request, settings: settings)))
    }

    /// Admins only: the token of the user with this email, creating the user if new.
    @Sendable func createToken(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        var request = request
        guard try context.caller().isAdmin else { throw APIError.forbidden }
        let body = try await request.jsonBody(context: context)
        guard let object = body.objectValue else {
            throw APIError.validation(FieldErrors("non_field_errors", "Invalid data. Expected a dictionary, but got \(body.kindName)."))
        }
        let email: String
        switch object["email"] {
        case nil: throw APIError.validation(FieldErrors("email", FieldErrors.required))
        case .null?: throw APIError.validation(FieldErrors("email", FieldErrors.notNull))
        case .string(let text)? where ScheduleValidation.isEmail(text.trimmingCharacters(in: .whitespaces)):
            email = text.trimmingCharacters(in: .whitespaces)
        case .string?: throw APIError.validation(FieldErrors("email", FieldErrors.invalidEmail))
        default: throw APIError.validation(FieldErrors("email", FieldErrors.notString))
        }
        let issued = try await store.issueToken(email: email, admin: false)
        context.logger.info("token issued", metadata: ["token.user.id": "\(issued.user.id)", "user.created": "\(issued.created)"])
        return JSONResponse.make(status: .created, body: .object(["token": .string(issued.token)]))
    }

    private func json(_ user: User, _ links: Links) -> JSONValue {
        .object([
            "url": .string(links.user(user.id)), "username": .string(user.username), "email": .string(user.email),
            "groups": .array(user.groupIDs.map { .string(links.group($0)) }),
        ])
    }

    private func json(_ group: Group, _ links: Links) -> JSONValue {
        .object(["url": .string(links.group(group.id)), "name": .string(group.name)])
    }
}
