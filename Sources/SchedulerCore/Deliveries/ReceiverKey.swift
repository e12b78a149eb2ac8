import Foundation

/// A receiver is a scheme, host and port: `http://host:80`, `https://[::1]:8443`. Limits,
/// pauses and circuit breakers are per receiver; paths on one receiver share them.
public enum ReceiverKey {
    /// The receiver of an http(s) URL (lowercased, with the scheme's default port), or nil.
    public static func normalize(_ url: String) -> String? {
        URLComponents(string: url).flatMap(normalize)
    }

    /// The receiver of a URL already parsed.
    public static func normalize(_ components: URLComponents) -> String? {
        guard let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return "\(scheme)://\(bare.contains(":") ? "[\(bare)]" : bare):\(port)"
    }
}
