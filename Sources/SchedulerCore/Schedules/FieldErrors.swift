/// Validation errors by field, in the order found: the API answers 400 with
/// `{"field": ["message", ...]}`, as Django REST Framework does.
public struct FieldErrors: Error, Sendable, Equatable {
    public private(set) var fields: [(field: String, messages: [String])] = []

    public init() {}

    public init(_ field: String, _ message: String) { add(field, message) }

    public var isEmpty: Bool { fields.isEmpty }

    public mutating func add(_ field: String, _ message: String) {
        if let index = fields.firstIndex(where: { $0.field == field }) {
            fields[index].messages.append(message)
        } else {
            fields.append((field, [message]))
        }
    }

    public func messages(for field: String) -> [String] {
        fields.first(where: { $0.field == field })?.messages ?? []
    }

    public var json: JSONValue {
        var object = JSONObject()
        for (field, messages) in fields { object[field] = .array(messages.map(JSONValue.string)) }
        return .object(object)
    }

    public static func == (lhs: FieldErrors, rhs: FieldErrors) -> Bool {
        lhs.fields.map(\.field) == rhs.fields.map(\.field) && lhs.fields.map(\.messages) == rhs.fields.map(\.messages)
    }

    public static let required = "This field is required."
    public static let notNull = "This field may not be null."
    public static let invalidURL = "Enter a valid URL."
    public static let invalidEmail = "Enter a valid email address."
    public static let notString = "Not a valid string."
    public static let notInteger = "A valid integer is required."
    public static let notBoolean = "Must be a valid boolean."
    public static let controlCharacters = "Control characters (line breaks, tabs, NUL and the like) are not allowed."
    public static let badDatetime =
        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
}
