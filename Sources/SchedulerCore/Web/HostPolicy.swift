import Foundation

/// Which `Host` headers the API answers, and where its absolute URLs (`url`, `next`,
/// `created_by`, `Location`) point: `PUBLIC_URL` when set, else the request's host when it is
/// one of `ALLOWED_HOSTS` (Django's name and rules), never an arbitrary one.
public struct HostPolicy: Sendable, Equatable {
    /// Allowed host names, lowercased: `example.org`, `.example.org` (it and its
    /// subdomains), `*` (any), addresses (`127.0.0.1`, `[::1]`).
    public let allowed: [String]
    /// `scheme://host[:port][/prefix]` without a trailing slash, from `PUBLIC_URL`.
    public let publicURL: String?

    public static let defaultAllowed = ["localhost", "127.0.0.1", "[::1]"]

    public init(allowed: [String] = Self.defaultAllowed, publicURL: String? = nil) {
        var hosts = allowed.map { $0.lowercased() }
        if let publicURL, let host = URLComponents(string: publicURL)?.host?.lowercased(), !hosts.contains(host) {
            hosts.append(host.contains(":") ? "[\(host)]" : host)
        }
        self.allowed = hosts
        self.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// Reads `ALLOWED_HOSTS` (comma-separated) and `PUBLIC_URL`; nil when either is malformed.
    public init?(allowedHosts: String?, publicURL: String?) {
        var hosts = Self.defaultAllowed
        if let allowedHosts {
            hosts = allowedHosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard
                hosts.allSatisfy({ host in
                    host == "*" || (host.utf8.count <= 253 && host.unicodeScalars.allSatisfy { $0.isASCII && Self.hostCharacter($0) })
                })
            else { return nil }
        }
        if let publicURL {
            guard let components = URLComponents(string: publicURL), let scheme = components.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty, components.query == nil,
                components.fragment == nil, components.user == nil, publicURL.utf8.count <= 1024,
                !publicURL.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F })
            else { return nil }
        }
        self.init(allowed: hosts, publicURL: publicURL)
    }

    static func hostCharacter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || ".-_:[]".unicodeScalars.contains(scalar)
    }

    /// The host part of a `Host` header (`example.org:8000` is `example.org`, `[::1]:80` is
    /// `[::1]`), lowercased; nil when it is not a plausible host.
    public static func hostName(_ authority: String) -> String? {
        guard !authority.isEmpty, authority.utf8.count <= 260, authority.unicodeScalars.allSatisfy({ $0.isASCII && hostCharacter($0) })
        else { return nil }
        let lowered = authority.lowercased()
        if lowered.hasPrefix("[") {
            guard let close = lowered.firstIndex(of: "]") else { return nil }
            let rest = lowered[lowered.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else { return nil }
            return String(lowered[...close])
        }
        let parts = lowered.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, !parts[0].isEmpty, parts.count == 1 || parts[1].allSatisfy(\.isNumber) else { return nil }
        return String(parts[0])
    }

    /// Whether a request with this `Host` header is answered.
    public func allows(authority: String) -> Bool {
        guard let host = Self.hostName(authority) else { return false }
        return allowed.contains { pattern in
            pattern == "*" || pattern == host || (pattern.hasPrefix(".") && (host.hasSuffix(pattern) || host == pattern.dropFirst()))
        }
    }

    /// The start of every absolute URL for a request with this `Host` header (nil: none).
    public func base(authority: String?, useSSL: Bool) -> String {
        if let publicURL { return publicURL }
        let scheme = useSSL ? "https://" : "http://"
        if let authority, allows(authority: authority) { return scheme + authority.lowercased() }
        let fallback = allowed.first { $0 != "*" && !$0.hasPrefix(".") } ?? "localhost"
        return scheme + fallback
    }
}
