//! Wire types that mirror the domain's, written once: the struct or enum with its
//! serde and OpenAPI attributes, and the conversion, field by field or variant by
//! variant, generated from the same list (so a field added to one side and not the
//! other does not compile).

/// A wire struct with a domain struct's fields, by name, and the conversion between
/// them: `from Domain` (answers: each field `.into()` the wire's type, so one may change
/// type on the way, an enum to its name) or `into Domain` (request bodies).
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $wire:ident from $domain:path {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $wire {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl From<$domain> for $wire {
            #[allow(clippy::useless_conversion)]
            fn from(value: $domain) -> Self {
                $wire { $($field: value.$field.into()),* }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $wire:ident into $domain:path {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $wire {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl From<$wire> for $domain {
            #[allow(clippy::useless_conversion)]
            fn from(value: $wire) -> Self {
                Self { $($field: value.$field.into()),* }
            }
        }
    };
}
pub(crate) use wire_struct;

/// A wire enum with a domain enum's variants, and `From` both ways.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $wire:ident mirrors $domain:ident {
            $($(#[$variant_meta:meta])* $variant:ident),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $wire {
            $($(#[$variant_meta])* $variant),*
        }

        impl From<$domain> for $wire {
            fn from(value: $domain) -> Self {
                match value {
                    $($domain::$variant => $wire::$variant),*
                }
            }
        }

        impl From<$wire> for $domain {
            fn from(value: $wire) -> Self {
                match value {
                    $($wire::$variant => $domain::$variant),*
                }
            }
        }
    };
}
pub(crate) use wire_enum;
