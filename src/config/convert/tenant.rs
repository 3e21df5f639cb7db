//! `tenant`: where identities come from, trusted headers or verified JWT claims.

use super::*;

/// The JWT algorithm names accepted in `tenant.jwt.algorithms`.
const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];
/// Longest `tenant.jwt.leeway` accepted.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl Cx<'_> {
    pub(super) fn tenant(&mut self, raw: Option<Spanned<raw::Tenant>>) -> Tenant {
        let Some(Spanned {
            value: mut raw,
            pos,
        }) = raw
        else {
            return Tenant::default();
        };
        if let Some(jwt) = raw.jwt.take() {
            return self.jwt_tenant(pos, raw, jwt);
        }
        if let Some(field) = &raw.workspace_param {
            self.error(
                field.pos,
                "tenant.workspace_param needs tenant.jwt",
                Some("it names the path parameter checked against the token; remove it in header mode".to_string()),
            );
        }
        let mut headers = Vec::new();
        let mut identity =
            |cx: &mut Self, field: Option<Spanned<raw::Identity>>, what: &str, example: &str| {
                let Spanned { value, pos } = field?;
                if let Some(claim) = &value.claim {
                    cx.error(
                        claim.pos,
                        format!("{what}.claim needs tenant.jwt"),
                        Some(
                            "add tenant.jwt to verify tokens, or read the identity from a header"
                                .to_string(),
                        ),
                    );
                }
                cx.missing_keys(pos, what, &[("header", value.header.is_some(), example)]);
                let header = value.header?;
                let name = cx.header_name(&header)?;
                headers.push(header.value.trim().to_string());
                Some(IdentitySource::Header(name))
            };
        let workspace = identity(
            self,
            raw.workspace,
            "tenant.workspace",
            "header: X-Workspace-ID",
        );
        let user = identity(self, raw.user, "tenant.user", "header: X-User-ID");
        if !headers.is_empty() {
            self.report.warning(
                pos,
                format!(
                    "tenant identity is trusted from the request header{} {}; this is only safe behind a gateway that sets or overwrites {}",
                    if headers.len() == 1 { "" } else { "s" },
                    headers.join(" and "),
                    if headers.len() == 1 { "it" } else { "them" },
                ),
                Some("make sure clients cannot reach tagcache without going through that gateway".to_string()),
            );
        }
        Tenant {
            workspace,
            user,
            jwt: None,
        }
    }

    /// `tenant` with `jwt`: identities from verified claims; the headers
    /// only name (and must agree with) what the token allows.
    fn jwt_tenant(&mut self, pos: Pos, raw: raw::Tenant, jwt: Spanned<raw::Jwt>) -> Tenant {
        let identity = |cx: &mut Self,
                        field: Option<Spanned<raw::Identity>>,
                        what: &str,
                        claim_example: &str,
                        default_header: &'static str| {
            let Spanned { value, pos } = field?;
            cx.missing_keys(
                pos,
                what,
                &[("claim", value.claim.is_some(), claim_example)],
            );
            let claim = value.claim.and_then(|c| {
                let name = c.value.trim().to_string();
                if name.is_empty() {
                    cx.error(
                        c.pos,
                        format!("{what}.claim is empty"),
                        Some(claim_example.to_string()),
                    );
                    None
                } else {
                    Some(name)
                }
            });
            let header = match &value.header {
                Some(h) => cx.header_name(h),
                None => Some(HeaderName::from_static(default_header)),
            };
            Some((claim, header))
        };
        let workspace = identity(
            self,
            raw.workspace,
            "tenant.workspace",
            "claim: workspace_id",
            defaults::JWT_WORKSPACE_HEADER,
        );
        let user = identity(
            self,
            raw.user,
            "tenant.user",
            "claim: sub",
            defaults::JWT_USER_HEADER,
        );
        if workspace.is_none() {
            self.error(
                pos,
                "tenant.jwt needs tenant.workspace to name the workspace claim",
                Some("add workspace: { claim: workspace_id }".to_string()),
            );
        }
        let workspace_param = match raw.workspace_param {
            Some(field) if field.value.trim().is_empty() => {
                self.error(
                    field.pos,
                    "tenant.workspace_param is empty",
                    Some("e.g. workspace_param: workspace_id".to_string()),
                );
                defaults::WORKSPACE_PARAM.to_string()
            }
            Some(field) => field.value.trim().to_string(),
            None => defaults::WORKSPACE_PARAM.to_string(),
        };
        let (workspace_claim, workspace_header) = workspace.unwrap_or((None, None));
        let (user_claim, user_header) = match user {
            Some((claim, header)) => (claim, header),
            None => (None, None),
        };
        let jwt = self.jwt(
            jwt,
            workspace_claim.unwrap_or_default(),
            user_claim,
            workspace_param,
        );
        Tenant {
            workspace: workspace_header.map(IdentitySource::Header),
            user: user_header.map(IdentitySource::Header),
            jwt,
        }
    }

    fn jwt(
        &mut self,
        raw: Spanned<raw::Jwt>,
        workspace_claim: String,
        user_claim: Option<String>,
        workspace_param: String,
    ) -> Option<Jwt> {
        use jsonwebtoken::{Algorithm, AlgorithmFamily};
        let Spanned { value: raw, pos } = raw;
        self.missing_keys(
            pos,
            "tenant.jwt",
            &[(
                "algorithms",
                raw.algorithms.is_some(),
                "algorithms: [HS256]",
            )],
        );
        let mut algorithms: Vec<Algorithm> = Vec::new();
        let mut ok = true;
        let mut mixed = false;
        if let Some(list) = &raw.algorithms {
            if list.value.0.is_empty() {
                self.error(
                    list.pos,
                    "tenant.jwt.algorithms is empty",
                    Some("e.g. algorithms: [RS256]".to_string()),
                );
                ok = false;
            }
            for name in &list.value.0 {
                let text = name.value.trim();
                match text.parse::<Algorithm>() {
                    Ok(a) if JWT_ALGORITHMS.contains(&text) => {
                        if !algorithms.contains(&a) {
                            algorithms.push(a);
                        }
                    }
                    _ if text.eq_ignore_ascii_case("none") => {
                        self.error(
                            name.pos,
                            "\"none\" is never accepted: unsigned tokens would let anyone claim any workspace",
                            Some("name the algorithm your tokens are signed with, e.g. HS256 or RS256".to_string()),
                        );
                        ok = false;
                    }
                    _ => {
                        let hint = did_you_mean(text, JWT_ALGORITHMS)
                            .map_or(String::new(), |m| format!("{m} "));
                        self.error(
                            name.pos,
                            format!("unknown JWT algorithm {text:?}"),
                            Some(format!(
                                "{hint}algorithms are {}",
                                JWT_ALGORITHMS.join(", ")
                            )),
                        );
                        ok = false;
                    }
                }
            }
            if algorithms
                .iter()
                .any(|a| a.family() != algorithms[0].family())
            {
                self.error(
                    list.pos,
                    "tenant.jwt.algorithms mixes key types",
                    Some("list algorithms of one family (HS*, RS*/PS*, ES* or EdDSA): one key verifies them all, and mixing HMAC with public keys opens algorithm confusion".to_string()),
                );
                ok = false;
                mixed = true;
            }
        } else {
            ok = false;
        }
        // With mixed families, whether the key fits is moot: that is reported already.
        let family = algorithms.first().map(|a| a.family()).filter(|_| !mixed);
        let sources: Vec<&str> = [
            raw.secret.as_ref().map(|_| "secret"),
            raw.public_key_file.as_ref().map(|_| "public_key_file"),
            raw.jwks_file.as_ref().map(|_| "jwks_file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if sources.len() != 1 {
            self.error(
                pos,
                if sources.is_empty() {
                    "tenant.jwt has no key".to_string()
                } else {
                    format!("tenant.jwt has more than one key ({})", sources.join(", "))
                },
                Some("set exactly one of secret (HS*), public_key_file or jwks_file".to_string()),
            );
            ok = false;
        }
        let base = std::path::Path::new(self.report.file())
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let read =
            |cx: &mut Self, field: &Spanned<String>| -> Option<(std::path::PathBuf, Vec<u8>)> {
                let path = base.join(field.value.trim());
                match std::fs::read(&path) {
                    Ok(bytes) => Some((path, bytes)),
                    Err(e) => {
                        cx.error(
                            field.pos,
                            format!("cannot read {}: {e}", path.display()),
                            Some("paths are relative to the config file".to_string()),
                        );
                        None
                    }
                }
            };
        let reload_interval = self.positive_duration(
            raw.reload_interval.as_ref(),
            defaults::JWT_RELOAD_INTERVAL,
            "tenant.jwt.reload_interval",
        );
        if let (Some(field), None) = (&raw.reload_interval, &raw.jwks_file) {
            self.error(field.pos, "reload_interval only applies to jwks_file", None);
        }
        let mut key = None;
        if let Some(secret) = raw.secret {
            let secret_pos = secret.pos;
            let s = self.secret(Some(secret), "tenant.jwt.secret");
            match family {
                Some(AlgorithmFamily::Hmac) | None => {
                    let need = algorithms
                        .iter()
                        .map(|a| match a {
                            Algorithm::HS384 => 48,
                            Algorithm::HS512 => 64,
                            _ => 32,
                        })
                        .max()
                        .unwrap_or(32);
                    if let Some(s) = &s {
                        // Never echo the value; its length is enough to act on.
                        if !s.expose().is_empty() && s.expose().len() < need {
                            self.error(
                                secret_pos,
                                format!("tenant.jwt.secret is {} bytes; {} needs at least {need}", s.expose().len(), algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join("/")),
                                Some("a shorter HMAC key can be brute-forced offline from any token; use e.g. `openssl rand -hex 32`".to_string()),
                            );
                        }
                    }
                    key = s.map(JwtKey::Secret);
                }
                Some(_) => {
                    self.error(
                        secret_pos,
                        format!("{:?} verifies with a public key, not a secret", algorithms[0]),
                        Some("use public_key_file or jwks_file; a secret only goes with HS256/HS384/HS512".to_string()),
                    );
                    ok = false;
                }
            }
        }
        for (field, is_jwks) in [(&raw.public_key_file, false), (&raw.jwks_file, true)] {
            let Some(field) = field else { continue };
            if family == Some(AlgorithmFamily::Hmac) {
                self.error(
                    field.pos,
                    format!("{:?} verifies with a shared secret, not a public key", algorithms[0]),
                    Some("use secret: \"${JWT_SECRET}\", or list the public-key algorithm your tokens use (e.g. RS256)".to_string()),
                );
                ok = false;
                continue;
            }
            let Some((path, bytes)) = read(self, field) else {
                ok = false;
                continue;
            };
            let candidate = if is_jwks {
                JwtKey::Jwks {
                    path,
                    reload_interval,
                    initial: bytes,
                }
            } else {
                JwtKey::PublicKey { path, pem: bytes }
            };
            if ok {
                let material = match &candidate {
                    JwtKey::Secret(_) => crate::jwt_keys::Material::Secret,
                    JwtKey::PublicKey { pem, .. } => crate::jwt_keys::Material::Pem(pem),
                    JwtKey::Jwks { initial, .. } => crate::jwt_keys::Material::Jwks(initial),
                };
                if let Err(e) = crate::jwt_keys::check(&algorithms, material) {
                    self.error(field.pos, format!("{}: {e}", field.value.trim()), None);
                    ok = false;
                }
            }
            key = Some(candidate);
        }
        let list =
            |cx: &mut Self, field: Option<Spanned<raw::OneOrMany<Spanned<String>>>>, what: &str| {
                let Some(field) = field else {
                    return Vec::new();
                };
                let values: Vec<String> = field.value.0.into_iter().map(|v| v.value).collect();
                if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
                    cx.error(
                        field.pos,
                        format!("tenant.jwt.{what} has an empty value"),
                        None,
                    );
                }
                values
            };
        let issuer = list(self, raw.issuer, "issuer");
        let audience = list(self, raw.audience, "audience");
        let leeway = self.duration(raw.leeway.as_ref(), defaults::JWT_LEEWAY);
        if let Some(field) = &raw.leeway {
            if leeway > MAX_LEEWAY {
                self.error(
                    field.pos,
                    format!("tenant.jwt.leeway is over {}s", MAX_LEEWAY.as_secs()),
                    Some(
                        "leeway covers clock skew; a long one keeps expired tokens valid"
                            .to_string(),
                    ),
                );
            }
        }
        let on_invalid = match raw.on_invalid {
            Some(raw::OnInvalid::Pass) => OnInvalid::Pass,
            Some(raw::OnInvalid::Reject) => OnInvalid::Reject,
            None => defaults::JWT_ON_INVALID,
        };
        let key = key.filter(|_| ok)?;
        Some(Jwt {
            algorithms,
            key,
            issuer,
            audience,
            leeway,
            on_invalid,
            workspace_claim,
            user_claim,
            workspace_param,
        })
    }
}
