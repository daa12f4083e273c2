//! The state handles that Flink's Kubernetes HA services keep in ConfigMap values.
//!
//! # What a value is
//!
//! A ConfigMap entry of a Flink HA store (job graphs, completed checkpoints) does not hold the
//! state itself: it holds a small pointer to a file in the HA storage directory, encoded as
//! standard base64 (padded) of a Java Object Serialization stream. Two shapes exist:
//!
//! * Flink 1.12–1.14 write a `RetrievableStreamStateHandle` directly:
//!
//!   ```text
//!   org.apache.flink.runtime.state.RetrievableStreamStateHandle   (no custom writeObject)
//!     wrappedStreamStateHandle: org.apache.flink.runtime.state.filesystem.FileStateHandle
//!       stateSize: long
//!       filePath:  org.apache.flink.core.fs.Path
//!         uri: java.net.URI   (custom writeObject: its default field, then end of block data)
//!           string: java.lang.String   <- the path we want
//!   ```
//!
//! * Flink 1.15 and later wrap that handle in
//!   `org.apache.flink.kubernetes.highavailability.KubernetesStateHandleStore$StateHandleWithDeleteMarker`
//!   with the fields `boolean markedForDeletion` and `RetrievableStateHandle inner`, in that
//!   order because Java lists primitive fields first (the marker makes removal idempotent: an
//!   entry is first marked, then its file discarded, then the entry removed). That class
//!   declares no `serialVersionUID`, so the JVM computes one from the class's members, and it
//!   changed when the class gained a `collectSizeStats` method after 1.15:
//!   [`DELETE_MARKER_SUID_FLINK_1_15`] (seen in 1.15.4) and [`DELETE_MARKER_SUID_FLINK_1_20`]
//!   (seen in 1.20.3). Java refuses a value whose class has another `serialVersionUID`, so those
//!   two Flink versions cannot read each other's wrapped values; this reader reads both.
//!
//! # The stream format, as far as it is handled here
//!
//! A stream starts with the magic `0xACED` and version `5`, then holds exactly one top-level
//! object. An object is `TC_OBJECT`, a class descriptor, then per class of its hierarchy (the
//! topmost serializable superclass first) the values of that class's fields — all primitive ones
//! first, then the object ones, in descriptor order — followed, when the class has its own
//! `writeObject` (flag `SC_WRITE_METHOD`), by optional custom data closed by `TC_ENDBLOCKDATA`.
//! A class descriptor (`TC_CLASSDESC`) carries the class name, the `serialVersionUID`, flags,
//! the field descriptors (a one-byte type code and a name; object fields also a type signature
//! that is itself a string object, often a back-reference), class annotations closed by
//! `TC_ENDBLOCKDATA`, and the superclass descriptor (or `TC_NULL`). Every descriptor, string and
//! object gets the next *handle* (numbered from `0x7E0000`) and may be referred to again with
//! `TC_REFERENCE`. Strings are Java's "modified UTF-8": NUL is `C0 80`, and a character outside
//! the Basic Multilingual Plane is two UTF-16 surrogates of three bytes each; up to 65535 bytes
//! take `TC_STRING` with a two-byte length, longer ones `TC_LONGSTRING` with an eight-byte length.
//!
//! The reader turns the stream into a small generic tree first (descriptors, strings, objects;
//! block data is skipped and only its place noted) and only then checks it against the shapes
//! above, so a stream that is well formed but not what Flink writes (another class, a subclass,
//! an extra field, custom data) is reported by name and byte offset rather than as a parse
//! failure somewhere after it. Arrays, enums, `Class` objects, proxy classes, `TC_RESET` and
//! `TC_EXCEPTION` never occur in these values and are rejected with
//! [`HandleError::Unsupported`]; so are externalizable and enum classes, with
//! [`HandleError::UnsupportedClassFlags`].
//!
//! Tolerances, on purpose: any `serialVersionUID` is accepted (Flink itself would refuse a
//! mismatched one; the value is not recorded); class annotations are skipped as Java skips them;
//! unpadded base64 is accepted, as Java's decoder accepts it; a boolean byte other than 0 is
//! `true`, and overlong modified UTF-8 forms are decoded, both as Java does. What Rust cannot
//! represent is an error: an unpaired UTF-16 surrogate in a string.
//!
//! # Bounds
//!
//! Values come from ConfigMaps that anyone with write access can change, so the reader is built
//! to fail cleanly on anything: input longer than [`MAX_ENCODED_LEN`] is refused before it is
//! decoded; nesting (objects in objects, descriptors in descriptors) deeper than [`MAX_DEPTH`]
//! and more than [`MAX_HANDLES`] handles are errors; every length field is compared with the
//! bytes that are actually left before anything is allocated for it; trailing bytes after the
//! object are an error. Errors say what was wrong and at which byte offset of the decoded
//! stream. The encoder writes exactly the bytes a JVM writes for the same handle.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Longest value accepted, in bytes, before any decoding (the base64 text for
/// [`decode_base64`], the raw stream for [`decode`]). A ConfigMap holds at most 1 MiB in all.
pub const MAX_ENCODED_LEN: usize = 1 << 20;
/// Deepest nesting of objects and class descriptors accepted. Flink's values nest 6 deep.
pub const MAX_DEPTH: usize = 16;
/// Most handles (descriptors, strings, objects) a stream may assign. Flink's values use 13–16.
pub const MAX_HANDLES: usize = 1024;

/// Class name of the handle Flink 1.12–1.14 store directly.
pub const RETRIEVABLE_STREAM_STATE_HANDLE: &str =
    "org.apache.flink.runtime.state.RetrievableStreamStateHandle";
/// Class name of the wrapper Flink 1.15+ store.
pub const STATE_HANDLE_WITH_DELETE_MARKER: &str = "org.apache.flink.kubernetes.highavailability.KubernetesStateHandleStore$StateHandleWithDeleteMarker";
const FILE_STATE_HANDLE: &str = "org.apache.flink.runtime.state.filesystem.FileStateHandle";
const FLINK_PATH: &str = "org.apache.flink.core.fs.Path";
const JAVA_URI: &str = "java.net.URI";

/// `serialVersionUID` of `RetrievableStreamStateHandle` (declared in Flink's source).
pub const RETRIEVABLE_STREAM_STATE_HANDLE_SUID: i64 = 314567453677355;
/// `serialVersionUID` the JVM computes for `StateHandleWithDeleteMarker` as compiled in Flink
/// 1.15.4 (Flink declares none). [`encode`] writes this one.
pub const DELETE_MARKER_SUID_FLINK_1_15: i64 = -6953210432246692993;
/// The same for Flink 1.20.3, where the class has one method more (`collectSizeStats`).
pub const DELETE_MARKER_SUID_FLINK_1_20: i64 = 1994325530560040316;
const FILE_STATE_HANDLE_SUID: i64 = 350284443258002355;
const FLINK_PATH_SUID: i64 = 1;
const JAVA_URI_SUID: i64 = -6052424284110960213;

const STREAM_MAGIC: u16 = 0xACED;
const STREAM_VERSION: u16 = 5;
const BASE_HANDLE: u32 = 0x7E_0000;

const TC_NULL: u8 = 0x70;
const TC_REFERENCE: u8 = 0x71;
const TC_CLASSDESC: u8 = 0x72;
const TC_OBJECT: u8 = 0x73;
const TC_STRING: u8 = 0x74;
const TC_ARRAY: u8 = 0x75;
const TC_CLASS: u8 = 0x76;
const TC_BLOCKDATA: u8 = 0x77;
const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_RESET: u8 = 0x79;
const TC_BLOCKDATALONG: u8 = 0x7A;
const TC_EXCEPTION: u8 = 0x7B;
const TC_LONGSTRING: u8 = 0x7C;
const TC_PROXYCLASSDESC: u8 = 0x7D;
const TC_ENUM: u8 = 0x7E;

const SC_WRITE_METHOD: u8 = 0x01;
const SC_SERIALIZABLE: u8 = 0x02;

/// Which of Flink's two shapes a value has: Flink 1.12–1.14's bare handle (what hakeeper
/// writes), or Flink 1.15+'s wrapper with a delete marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
pub enum HandleKind {
    /// Flink 1.12–1.14: a bare `RetrievableStreamStateHandle`.
    RetrievableStreamStateHandle,
    /// Flink 1.15+: `KubernetesStateHandleStore$StateHandleWithDeleteMarker` around it.
    StateHandleWithDeleteMarker,
}

/// A decoded HA state handle: where the state lives and how big it is (as `hakeeper decode`
/// prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Handle)]
pub struct StateHandle {
    /// "RetrievableStreamStateHandle" or "StateHandleWithDeleteMarker"
    #[serde(rename = "type")]
    pub kind: HandleKind,
    /// The file's URI as Flink wrote it (`java.net.URI`'s string form).
    pub path: String,
    /// Size of the file in bytes, as Flink recorded it.
    pub state_size: i64,
    /// Some(marker) only for the 1.15+ wrapper; serialized as null otherwise
    #[schema(required = true)]
    pub marked_for_deletion: Option<bool>,
}

impl StateHandle {
    /// A plain (Flink 1.12–1.14) handle.
    pub fn new(path: impl Into<String>, state_size: i64) -> Self {
        StateHandle {
            kind: HandleKind::RetrievableStreamStateHandle,
            path: path.into(),
            state_size,
            marked_for_deletion: None,
        }
    }

    /// A Flink 1.15+ handle, wrapped with its delete marker.
    pub fn with_delete_marker(
        path: impl Into<String>,
        state_size: i64,
        marked_for_deletion: bool,
    ) -> Self {
        StateHandle {
            kind: HandleKind::StateHandleWithDeleteMarker,
            path: path.into(),
            state_size,
            marked_for_deletion: Some(marked_for_deletion),
        }
    }
}

/// Why a value is not a state handle. Offsets count bytes of the decoded stream, from 0 (the
/// stream magic); names and signatures in messages are clipped to a readable length.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    /// The input is longer than [`MAX_ENCODED_LEN`]; nothing was decoded.
    #[error("value is {len} bytes long, more than the {max} bytes accepted")]
    TooLarge { len: usize, max: usize },
    /// The ConfigMap value is not base64; its offsets count characters of the trimmed text.
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The stream does not start with `0xACED`.
    #[error("not a Java serialization stream: magic {found:#06x} at byte 0, expected 0xaced")]
    BadMagic { found: u16 },
    /// The stream is not of version 5, the only one Java has written since 1.2.
    #[error("unsupported serialization stream version {found} at byte 2, expected 5")]
    BadVersion { found: u16 },
    /// The stream ends in the middle of something.
    #[error("stream ends at byte {offset} inside {what}")]
    Truncated { offset: usize, what: &'static str },
    /// A length field asks for more bytes than the stream has left.
    #[error("{what} at byte {offset} claims {len} bytes, but only {remaining} are left")]
    LengthExceedsInput {
        offset: usize,
        what: &'static str,
        len: u64,
        remaining: usize,
    },
    /// A signed length field is negative.
    #[error("negative {what} length {len} at byte {offset}")]
    NegativeLength {
        offset: usize,
        what: &'static str,
        len: i64,
    },
    /// A byte that is no type code of the format where one was expected.
    #[error("unknown type code {code:#04x} at byte {offset}")]
    UnknownTypeCode { offset: usize, code: u8 },
    /// A part of the format that never occurs in a state handle: arrays, enums, `Class`
    /// objects, proxy classes, resets, exceptions.
    #[error("unsupported {what} (type code {code:#04x}) at byte {offset}")]
    Unsupported {
        offset: usize,
        code: u8,
        what: &'static str,
    },
    /// A valid type code in a place where the format does not allow it.
    #[error("type code {code:#04x} ({found}) at byte {offset} where {expected} was expected")]
    UnexpectedTypeCode {
        offset: usize,
        code: u8,
        found: &'static str,
        expected: &'static str,
    },
    /// A `TC_REFERENCE` to a handle not (yet) assigned.
    #[error("reference at byte {offset} to handle {handle:#x}, but only {assigned} handles exist")]
    UnknownHandle {
        offset: usize,
        handle: u32,
        assigned: usize,
    },
    /// A `TC_REFERENCE` to something of the wrong kind.
    #[error("reference at byte {offset} to handle {handle:#x}, which is {found}, not {expected}")]
    WrongHandle {
        offset: usize,
        handle: u32,
        found: &'static str,
        expected: &'static str,
    },
    /// More than [`MAX_HANDLES`] descriptors, strings and objects.
    #[error("more than {max} handles: the one at byte {offset} is one too many")]
    TooManyHandles { offset: usize, max: usize },
    /// Objects or class descriptors nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {max} levels at byte {offset}")]
    TooDeep { offset: usize, max: usize },
    /// A string (class name, field name, string object) that is not modified UTF-8.
    #[error("invalid modified UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    /// A string with a surrogate that is not half of a pair: valid in Java, not in Rust.
    #[error("unpaired UTF-16 surrogate {unit:#06x} at byte {offset}")]
    UnpairedSurrogate { offset: usize, unit: u16 },
    /// Class flags other than serializable with an optional `writeObject` method
    /// (externalizable, enum, not serializable, unknown bits).
    #[error("class {class} (descriptor at byte {offset}) has unsupported flags {flags:#04x}")]
    UnsupportedClassFlags {
        offset: usize,
        class: String,
        flags: u8,
    },
    /// A field type code that is none of `BCDFIJSZL[`.
    #[error("field descriptor at byte {offset} has invalid type code {code:#04x}")]
    InvalidFieldType { offset: usize, code: u8 },
    /// An object field whose type signature starts with neither `L` nor `[`.
    #[error("field descriptor at byte {offset} has invalid type signature {signature:?}")]
    InvalidFieldSignature { offset: usize, signature: String },
    /// A primitive field listed after an object field, which Java refuses.
    #[error("primitive field {field} of class {class} at byte {offset} follows an object field")]
    FieldOrder {
        offset: usize,
        class: String,
        field: String,
    },
    /// Bytes after the top-level object.
    #[error("{count} trailing bytes after the object, from byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
    /// A well-formed object of another class than Flink writes there (`found` shows its
    /// serializable superclasses too).
    #[error("object at byte {offset} is of class {found}, expected {expected}")]
    UnexpectedClass {
        offset: usize,
        expected: &'static str,
        found: String,
    },
    /// One of Flink's classes with other flags than it has.
    #[error(
        "class {class} (descriptor at byte {offset}) has flags {found:#04x}, expected {expected:#04x}"
    )]
    UnexpectedFlags {
        offset: usize,
        class: String,
        expected: u8,
        found: u8,
    },
    /// One of Flink's classes with other fields (names, types, order) than it has.
    #[error(
        "class {class} (descriptor at byte {offset}) has fields [{found}], expected [{expected}]"
    )]
    UnexpectedFields {
        offset: usize,
        class: String,
        expected: String,
        found: String,
    },
    /// A null, string or object where Flink writes something else.
    #[error("{what} at byte {offset} is {found}, expected {expected}")]
    UnexpectedValue {
        offset: usize,
        what: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// Custom `writeObject` data that Flink's classes do not write.
    #[error(
        "object of class {class} at byte {offset} has unexpected custom data at byte {data_offset}"
    )]
    UnexpectedCustomData {
        offset: usize,
        class: String,
        data_offset: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// The Java serialization bytes Flink writes for `handle` (either kind; the wrapper with
/// Flink 1.15's `serialVersionUID`, see [`encode_with_marker_suid`]).
///
/// A plain handle ignores `marked_for_deletion`; a wrapped one without a marker is written as
/// not marked. The result is not length-limited: a path of more than about 768 KiB makes a value
/// that [`decode_base64`] refuses, as a ConfigMap would.
pub fn encode(handle: &StateHandle) -> Vec<u8> {
    encode_with_marker_suid(handle, DELETE_MARKER_SUID_FLINK_1_15)
}

/// [`encode`], writing `StateHandleWithDeleteMarker` with the given `serialVersionUID` (one of
/// the `DELETE_MARKER_SUID_*` constants, for the Flink version that is to read the value).
/// Plain handles do not depend on it.
pub fn encode_with_marker_suid(handle: &StateHandle, marker_suid: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(700 + mutf8_len(&handle.path));
    out.extend_from_slice(&STREAM_MAGIC.to_be_bytes());
    out.extend_from_slice(&STREAM_VERSION.to_be_bytes());
    if handle.kind == HandleKind::StateHandleWithDeleteMarker {
        out.push(TC_OBJECT);
        write_class_desc(
            &mut out,
            STATE_HANDLE_WITH_DELETE_MARKER,
            marker_suid,
            SC_SERIALIZABLE,
            DELETE_MARKER_FIELDS,
        );
        out.push(u8::from(handle.marked_for_deletion.unwrap_or(false)));
    }
    out.push(TC_OBJECT);
    write_class_desc(
        &mut out,
        RETRIEVABLE_STREAM_STATE_HANDLE,
        RETRIEVABLE_STREAM_STATE_HANDLE_SUID,
        SC_SERIALIZABLE,
        RSSH_FIELDS,
    );
    out.push(TC_OBJECT);
    write_class_desc(
        &mut out,
        FILE_STATE_HANDLE,
        FILE_STATE_HANDLE_SUID,
        SC_SERIALIZABLE,
        FILE_STATE_HANDLE_FIELDS,
    );
    out.extend_from_slice(&handle.state_size.to_be_bytes());
    out.push(TC_OBJECT);
    write_class_desc(
        &mut out,
        FLINK_PATH,
        FLINK_PATH_SUID,
        SC_SERIALIZABLE,
        PATH_FIELDS,
    );
    out.push(TC_OBJECT);
    write_class_desc(
        &mut out,
        JAVA_URI,
        JAVA_URI_SUID,
        SC_SERIALIZABLE | SC_WRITE_METHOD,
        URI_FIELDS,
    );
    write_string_object(&mut out, &handle.path);
    // End of URI.writeObject's custom data (it writes nothing after its default field).
    out.push(TC_ENDBLOCKDATA);
    out
}

/// [`encode`], as the standard padded base64 that goes into the ConfigMap.
pub fn encode_base64(handle: &StateHandle) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode(handle))
}

/// A class descriptor with no annotations and no serializable superclass. Field type
/// signatures are all distinct within one value, so none is written as a back-reference.
fn write_class_desc(
    out: &mut Vec<u8>,
    name: &str,
    suid: i64,
    flags: u8,
    fields: &[(u8, &str, &str)],
) {
    out.push(TC_CLASSDESC);
    write_utf(out, name);
    out.extend_from_slice(&suid.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for &(code, name, signature) in fields {
        out.push(code);
        write_utf(out, name);
        if matches!(code, b'L' | b'[') {
            write_string_object(out, signature);
        }
    }
    out.push(TC_ENDBLOCKDATA);
    out.push(TC_NULL);
}

/// `DataOutput.writeUTF` for the names above, which are all far below 65536 bytes.
fn write_utf(out: &mut Vec<u8>, s: &str) {
    let len = mutf8_len(s);
    debug_assert!(len <= 0xFFFF);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    write_mutf8(out, s);
}

/// A string object, as `ObjectOutputStream.writeString` chooses: `TC_STRING` up to 65535 bytes
/// of modified UTF-8, `TC_LONGSTRING` beyond.
fn write_string_object(out: &mut Vec<u8>, s: &str) {
    let len = mutf8_len(s);
    if len <= 0xFFFF {
        out.push(TC_STRING);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(TC_LONGSTRING);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    write_mutf8(out, s);
}

/// Length of `s` in Java's modified UTF-8.
fn mutf8_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0 => 2,
            1..=0x7F => 1,
            0x80..=0x7FF => 2,
            0x800..=0xFFFF => 3,
            _ => 6,
        })
        .sum()
}

/// Appends `s` in Java's modified UTF-8: NUL as `C0 80`, characters beyond U+FFFF as two
/// three-byte surrogates.
fn write_mutf8(out: &mut Vec<u8>, s: &str) {
    let mut units = [0u16; 2];
    for c in s.chars() {
        for &unit in c.encode_utf16(&mut units).iter() {
            match unit {
                1..=0x7F => out.push(unit as u8),
                0 | 0x80..=0x7FF => {
                    out.push(0xC0 | (unit >> 6) as u8);
                    out.push(0x80 | (unit & 0x3F) as u8);
                }
                _ => {
                    out.push(0xE0 | (unit >> 12) as u8);
                    out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                    out.push(0x80 | (unit & 0x3F) as u8);
                }
            }
        }
    }
}

/// Decodes Java's modified UTF-8 the way `ObjectInputStream` does; `base` is the offset of
/// `bytes[0]` in the stream, for error messages.
fn read_mutf8(bytes: &[u8], base: usize) -> Result<String, HandleError> {
    let mut out = String::with_capacity(bytes.len());
    let mut pending_high: Option<(u16, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let cont = |j: usize| -> Result<u16, HandleError> {
            match bytes.get(j) {
                Some(&c) if c & 0xC0 == 0x80 => Ok(u16::from(c & 0x3F)),
                _ => Err(HandleError::InvalidUtf8 { offset: base + j }),
            }
        };
        let unit = match b >> 4 {
            0..=7 => {
                i += 1;
                u16::from(b)
            }
            12 | 13 => {
                let c1 = cont(i + 1)?;
                i += 2;
                (u16::from(b & 0x1F) << 6) | c1
            }
            14 => {
                let c1 = cont(i + 1)?;
                let c2 = cont(i + 2)?;
                i += 3;
                (u16::from(b & 0x0F) << 12) | (c1 << 6) | c2
            }
            _ => return Err(HandleError::InvalidUtf8 { offset: base + i }),
        };
        if let Some((high, high_at)) = pending_high.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                // Always a valid scalar: U+10000..=U+10FFFF.
                out.extend(char::from_u32(c));
                continue;
            }
            return Err(HandleError::UnpairedSurrogate {
                offset: base + high_at,
                unit: high,
            });
        }
        match unit {
            0xD800..=0xDBFF => pending_high = Some((unit, start)),
            0xDC00..=0xDFFF => {
                return Err(HandleError::UnpairedSurrogate {
                    offset: base + start,
                    unit,
                });
            }
            // Any other UTF-16 unit is a scalar value of its own.
            _ => out.extend(char::from_u32(u32::from(unit))),
        }
    }
    if let Some((high, high_at)) = pending_high {
        return Err(HandleError::UnpairedSurrogate {
            offset: base + high_at,
            unit: high,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Decoding: entry points
// ---------------------------------------------------------------------------------------------

/// Reads a state handle from its Java serialization bytes.
pub fn decode(bytes: &[u8]) -> Result<StateHandle, HandleError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(HandleError::TooLarge {
            len: bytes.len(),
            max: MAX_ENCODED_LEN,
        });
    }
    let stream = parse(bytes)?;
    extract(&stream)
}

/// Reads a state handle from a ConfigMap value: base64 (standard alphabet; padding optional, as
/// for Java's decoder) with any surrounding ASCII whitespace ignored.
pub fn decode_base64(value: &str) -> Result<StateHandle, HandleError> {
    let value = value.trim_ascii();
    if value.len() > MAX_ENCODED_LEN {
        return Err(HandleError::TooLarge {
            len: value.len(),
            max: MAX_ENCODED_LEN,
        });
    }
    const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = LENIENT_PADDING.decode(value)?;
    decode(&bytes)
}

// ---------------------------------------------------------------------------------------------
// Decoding: the generic tree
// ---------------------------------------------------------------------------------------------

/// One parsed stream: the handle table, the class descriptors it points to, and the top-level
/// value.
#[derive(Debug)]
struct Stream {
    handles: Vec<Entry>,
    classes: Vec<ClassDesc>,
    top: Value,
}

#[derive(Debug)]
enum Entry {
    /// A class descriptor: its index in `classes` once complete, `None` while its annotations
    /// and superclass are still being read (a reference to it then is an error).
    Class(Option<usize>),
    Str(String),
    Object(Object),
}

impl Entry {
    fn describe(&self) -> &'static str {
        match self {
            Entry::Class(_) => "a class descriptor",
            Entry::Str(_) => "a string",
            Entry::Object(_) => "an object",
        }
    }
}

#[derive(Debug)]
struct ClassDesc {
    offset: usize,
    name: String,
    flags: u8,
    fields: Vec<FieldDesc>,
    /// Index in `classes` of the superclass descriptor. A descriptor is added to `classes`
    /// only when complete, after its superclass, so this index is always smaller than its
    /// own: superclass chains end.
    superclass: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
struct FieldDesc {
    code: u8,
    name: String,
    /// Handle of the string holding the type signature of object (`L`, `[`) fields. Kept as
    /// a handle: a signature may be one long string referred to by many fields.
    signature: Option<usize>,
}

#[derive(Debug)]
struct Object {
    offset: usize,
    /// Index in `classes` of its class descriptor.
    class: usize,
    /// One part per class of the hierarchy, topmost superclass first. Empty while the object
    /// is being read.
    data: Vec<ClassData>,
}

#[derive(Debug)]
struct ClassData {
    values: Vec<FieldValue>,
    /// Offset of the first item of custom data after the field values (only classes with
    /// `SC_WRITE_METHOD` have any).
    custom: Option<usize>,
}

#[derive(Debug)]
enum FieldValue {
    /// A primitive: its big-endian bytes, zero-extended.
    Prim {
        offset: usize,
        bits: u64,
    },
    Obj(Value),
}

#[derive(Debug, Clone, Copy)]
enum Value {
    Null {
        offset: usize,
    },
    /// A string or object in the handle table.
    Handle {
        offset: usize,
        handle: usize,
    },
}

impl Value {
    fn offset(&self) -> usize {
        match *self {
            Value::Null { offset } | Value::Handle { offset, .. } => offset,
        }
    }
}

fn primitive_size(code: u8) -> Option<usize> {
    Some(match code {
        b'B' | b'Z' => 1,
        b'C' | b'S' => 2,
        b'F' | b'I' => 4,
        b'D' | b'J' => 8,
        _ => return None,
    })
}

fn type_code_name(code: u8) -> &'static str {
    match code {
        TC_NULL => "TC_NULL",
        TC_REFERENCE => "TC_REFERENCE",
        TC_CLASSDESC => "TC_CLASSDESC",
        TC_OBJECT => "TC_OBJECT",
        TC_STRING => "TC_STRING",
        TC_ARRAY => "TC_ARRAY",
        TC_CLASS => "TC_CLASS",
        TC_BLOCKDATA => "TC_BLOCKDATA",
        TC_ENDBLOCKDATA => "TC_ENDBLOCKDATA",
        TC_RESET => "TC_RESET",
        TC_BLOCKDATALONG => "TC_BLOCKDATALONG",
        TC_EXCEPTION => "TC_EXCEPTION",
        TC_LONGSTRING => "TC_LONGSTRING",
        TC_PROXYCLASSDESC => "TC_PROXYCLASSDESC",
        TC_ENUM => "TC_ENUM",
        _ => "unknown",
    }
}

/// The error for a type code that has no place where it was found.
fn misplaced(offset: usize, code: u8, expected: &'static str) -> HandleError {
    let what = match code {
        TC_ARRAY => "array",
        TC_CLASS => "Class object",
        TC_RESET => "stream reset",
        TC_EXCEPTION => "exception",
        TC_PROXYCLASSDESC => "proxy class descriptor",
        TC_ENUM => "enum constant",
        TC_NULL..=TC_ENUM => {
            return HandleError::UnexpectedTypeCode {
                offset,
                code,
                found: type_code_name(code),
                expected,
            };
        }
        _ => return HandleError::UnknownTypeCode { offset, code },
    };
    HandleError::Unsupported { offset, code, what }
}

fn parse(bytes: &[u8]) -> Result<Stream, HandleError> {
    let mut p = Parser {
        buf: bytes,
        pos: 0,
        depth: 0,
        handles: Vec::new(),
        classes: Vec::new(),
    };
    let magic = p.u16("the stream header")?;
    if magic != STREAM_MAGIC {
        return Err(HandleError::BadMagic { found: magic });
    }
    let version = p.u16("the stream header")?;
    if version != STREAM_VERSION {
        return Err(HandleError::BadVersion { found: version });
    }
    let top = p.value("the top-level object")?;
    if p.pos != bytes.len() {
        return Err(HandleError::TrailingBytes {
            offset: p.pos,
            count: bytes.len() - p.pos,
        });
    }
    Ok(Stream {
        handles: p.handles,
        classes: p.classes,
        top,
    })
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    handles: Vec<Entry>,
    classes: Vec<ClassDesc>,
}

impl Parser<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], HandleError> {
        if n > self.remaining() {
            return Err(HandleError::Truncated {
                offset: self.buf.len(),
                what,
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], HandleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HandleError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HandleError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Checks a length field (at `len_at`) against the bytes left, before anything is read
    /// or allocated for it.
    fn check_len(&self, len: u64, len_at: usize, what: &'static str) -> Result<usize, HandleError> {
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(HandleError::LengthExceedsInput {
                offset: len_at,
                what,
                len,
                remaining,
            });
        }
        Ok(len as usize)
    }

    /// `len` bytes of modified UTF-8 whose length field started at `len_at`.
    fn mutf8(
        &mut self,
        len: u64,
        len_at: usize,
        what: &'static str,
    ) -> Result<String, HandleError> {
        let len = self.check_len(len, len_at, what)?;
        let start = self.pos;
        let bytes = self.take(len, what)?;
        read_mutf8(bytes, start)
    }

    /// `DataInput.readUTF`: a two-byte length, then modified UTF-8.
    fn utf(&mut self, what: &'static str) -> Result<String, HandleError> {
        let at = self.pos;
        let len = self.u16(what)?;
        self.mutf8(u64::from(len), at, what)
    }

    fn assign(&mut self, entry: Entry, offset: usize) -> Result<usize, HandleError> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(HandleError::TooManyHandles {
                offset,
                max: MAX_HANDLES,
            });
        }
        self.handles.push(entry);
        Ok(self.handles.len() - 1)
    }

    fn enter(&mut self, offset: usize) -> Result<(), HandleError> {
        if self.depth >= MAX_DEPTH {
            return Err(HandleError::TooDeep {
                offset,
                max: MAX_DEPTH,
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// After `TC_REFERENCE` at `at`: the handle it names, which must exist.
    fn reference(&mut self, at: usize) -> Result<usize, HandleError> {
        let raw = u32::from_be_bytes(self.array("a reference")?);
        let index = raw.wrapping_sub(BASE_HANDLE) as usize;
        if raw < BASE_HANDLE || index >= self.handles.len() {
            return Err(HandleError::UnknownHandle {
                offset: at,
                handle: raw,
                assigned: self.handles.len(),
            });
        }
        Ok(index)
    }

    fn wrong_handle(&self, at: usize, handle: usize, expected: &'static str) -> HandleError {
        let found = match self.handles[handle] {
            Entry::Class(None) => "a class descriptor still being read",
            ref other => other.describe(),
        };
        HandleError::WrongHandle {
            offset: at,
            handle: BASE_HANDLE + handle as u32,
            found,
            expected,
        }
    }

    /// A string object after its type code (`TC_STRING` or `TC_LONGSTRING`) at `at`.
    fn string_body(&mut self, code: u8, at: usize) -> Result<usize, HandleError> {
        let len_at = self.pos;
        let len = if code == TC_STRING {
            u64::from(self.u16("a string length")?)
        } else {
            let len = i64::from_be_bytes(self.array("a long string length")?);
            u64::try_from(len).map_err(|_| HandleError::NegativeLength {
                offset: len_at,
                what: "long string",
                len,
            })?
        };
        let value = self.mutf8(len, len_at, "a string")?;
        self.assign(Entry::Str(value), at)
    }

    /// Whatever can stand where an object is read: `TC_NULL`, `TC_REFERENCE` (to a string or
    /// object), `TC_OBJECT`, `TC_STRING`, `TC_LONGSTRING`.
    fn value(&mut self, expected: &'static str) -> Result<Value, HandleError> {
        let at = self.pos;
        let code = self.u8(expected)?;
        let handle = match code {
            TC_NULL => return Ok(Value::Null { offset: at }),
            TC_REFERENCE => {
                let handle = self.reference(at)?;
                if let Entry::Class(_) = self.handles[handle] {
                    return Err(self.wrong_handle(at, handle, "an object or a string"));
                }
                handle
            }
            TC_STRING | TC_LONGSTRING => self.string_body(code, at)?,
            TC_OBJECT => {
                self.enter(at)?;
                let handle = self.object_body(at)?;
                self.depth -= 1;
                handle
            }
            _ => return Err(misplaced(at, code, expected)),
        };
        Ok(Value::Handle { offset: at, handle })
    }

    /// A class descriptor, new or a reference to a complete one: its index in `classes`.
    /// `TC_NULL` gives `None` where `null_ok` (the superclass position) and is an error
    /// elsewhere.
    fn class_desc(&mut self, null_ok: bool) -> Result<Option<usize>, HandleError> {
        let at = self.pos;
        let code = self.u8("a class descriptor")?;
        match code {
            TC_NULL if null_ok => Ok(None),
            TC_REFERENCE => {
                let handle = self.reference(at)?;
                match self.handles[handle] {
                    Entry::Class(Some(index)) => Ok(Some(index)),
                    _ => Err(self.wrong_handle(at, handle, "a complete class descriptor")),
                }
            }
            TC_CLASSDESC => {
                self.enter(at)?;
                let index = self.class_desc_body(at)?;
                self.depth -= 1;
                Ok(Some(index))
            }
            _ => Err(misplaced(at, code, "a class descriptor")),
        }
    }

    /// The rest of a `TC_CLASSDESC` at `at`.
    fn class_desc_body(&mut self, at: usize) -> Result<usize, HandleError> {
        let handle = self.assign(Entry::Class(None), at)?;
        let name = self.utf("a class name")?;
        // The serialVersionUID: accepted whatever it is, and not kept.
        self.take(8, "a serialVersionUID")?;
        let flags_at = self.pos;
        let flags = self.u8("class flags")?;
        if flags & SC_SERIALIZABLE == 0 || flags & !(SC_SERIALIZABLE | SC_WRITE_METHOD) != 0 {
            return Err(HandleError::UnsupportedClassFlags {
                offset: flags_at,
                class: clip(&name),
                flags,
            });
        }
        let count = self.u16("a field count")?;
        // Not preallocated from `count`: every field read consumes input.
        let mut fields = Vec::new();
        let mut seen_object = false;
        for _ in 0..count {
            let field_at = self.pos;
            let code = self.u8("a field descriptor")?;
            let is_object = matches!(code, b'L' | b'[');
            if !is_object && primitive_size(code).is_none() {
                return Err(HandleError::InvalidFieldType {
                    offset: field_at,
                    code,
                });
            }
            let field_name = self.utf("a field name")?;
            let signature = if is_object {
                let sig_at = self.pos;
                let (handle, signature) = self.type_signature()?;
                if !matches!(signature.as_bytes().first(), Some(b'L' | b'[')) {
                    return Err(HandleError::InvalidFieldSignature {
                        offset: sig_at,
                        signature: clip(signature),
                    });
                }
                seen_object = true;
                Some(handle)
            } else {
                // Java sorts primitive fields first and refuses streams that do not.
                if seen_object {
                    return Err(HandleError::FieldOrder {
                        offset: field_at,
                        class: clip(&name),
                        field: clip(&field_name),
                    });
                }
                None
            };
            fields.push(FieldDesc {
                code,
                name: field_name,
                signature,
            });
        }
        // Class annotations (what annotateClass wrote): skipped, as Java skips them.
        self.annotations()?;
        let superclass = self.class_desc(true)?;
        self.classes.push(ClassDesc {
            offset: at,
            name,
            flags,
            fields,
            superclass,
        });
        let index = self.classes.len() - 1;
        self.handles[handle] = Entry::Class(Some(index));
        Ok(index)
    }

    /// The type signature of an object field, a string object or a reference to one: its
    /// handle and text.
    fn type_signature(&mut self) -> Result<(usize, &str), HandleError> {
        let at = self.pos;
        let code = self.u8("a field type signature")?;
        let handle = match code {
            TC_STRING | TC_LONGSTRING => self.string_body(code, at)?,
            TC_REFERENCE => self.reference(at)?,
            _ => return Err(misplaced(at, code, "a field type signature")),
        };
        match &self.handles[handle] {
            Entry::Str(s) => Ok((handle, s)),
            _ => Err(self.wrong_handle(at, handle, "a string")),
        }
    }

    /// Block data and objects up to and including `TC_ENDBLOCKDATA`: the offset of the first
    /// item, if any (nothing else of them is kept).
    fn annotations(&mut self) -> Result<Option<usize>, HandleError> {
        let mut first = None;
        loop {
            let at = self.pos;
            match self.buf.get(at).copied() {
                Some(TC_ENDBLOCKDATA) => {
                    self.pos += 1;
                    return Ok(first);
                }
                Some(TC_BLOCKDATA) => {
                    self.pos += 1;
                    let len = self.u8("a block data length")?;
                    let len = self.check_len(u64::from(len), at + 1, "block data")?;
                    self.pos += len;
                }
                Some(TC_BLOCKDATALONG) => {
                    self.pos += 1;
                    let len = i32::from_be_bytes(self.array("a block data length")?);
                    let len = u64::try_from(len).map_err(|_| HandleError::NegativeLength {
                        offset: at + 1,
                        what: "block data",
                        len: i64::from(len),
                    })?;
                    let len = self.check_len(len, at + 1, "block data")?;
                    self.pos += len;
                }
                _ => {
                    self.value("custom data or TC_ENDBLOCKDATA")?;
                }
            }
            first.get_or_insert(at);
        }
    }

    /// The rest of a `TC_OBJECT` at `at`: class descriptor, then per class of the hierarchy
    /// the field values and any custom data.
    fn object_body(&mut self, at: usize) -> Result<usize, HandleError> {
        let Some(class) = self.class_desc(false)? else {
            // class_desc(false) turns TC_NULL into an error; this is only a fallback.
            return Err(HandleError::UnexpectedTypeCode {
                offset: at + 1,
                code: TC_NULL,
                found: "TC_NULL",
                expected: "a class descriptor",
            });
        };
        let handle = self.assign(
            Entry::Object(Object {
                offset: at,
                class,
                data: Vec::new(),
            }),
            at,
        )?;
        // The hierarchy, topmost first (superclass indices strictly decrease, so this ends).
        let mut chain = Vec::new();
        let mut next = Some(class);
        while let Some(c) = next {
            chain.push(c);
            next = self.classes[c].superclass.filter(|&s| s < c);
        }
        let mut data = Vec::with_capacity(chain.len());
        for &c in chain.iter().rev() {
            let mut values = Vec::new();
            for i in 0..self.classes[c].fields.len() {
                let code = self.classes[c].fields[i].code;
                let offset = self.pos;
                match primitive_size(code) {
                    Some(size) => {
                        let bytes = self.take(size, "a primitive field value")?;
                        let bits = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                        values.push(FieldValue::Prim { offset, bits });
                    }
                    None => values.push(FieldValue::Obj(self.value("a field value")?)),
                }
            }
            let custom = if self.classes[c].flags & SC_WRITE_METHOD != 0 {
                self.annotations()?
            } else {
                None
            };
            data.push(ClassData { values, custom });
        }
        if let Entry::Object(object) = &mut self.handles[handle] {
            object.data = data;
        }
        Ok(handle)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding: from the tree to a handle
// ---------------------------------------------------------------------------------------------

/// Expected fields of a class: type code, name, type signature (empty for primitives).
type Schema = &'static [(u8, &'static str, &'static str)];

const DELETE_MARKER_FIELDS: Schema = &[
    (b'Z', "markedForDeletion", ""),
    (
        b'L',
        "inner",
        "Lorg/apache/flink/runtime/state/RetrievableStateHandle;",
    ),
];
const RSSH_FIELDS: Schema = &[(
    b'L',
    "wrappedStreamStateHandle",
    "Lorg/apache/flink/runtime/state/StreamStateHandle;",
)];
const FILE_STATE_HANDLE_FIELDS: Schema = &[
    (b'J', "stateSize", ""),
    (b'L', "filePath", "Lorg/apache/flink/core/fs/Path;"),
];
const PATH_FIELDS: Schema = &[(b'L', "uri", "Ljava/net/URI;")];
const URI_FIELDS: Schema = &[(b'L', "string", "Ljava/lang/String;")];

/// "J stateSize, Lorg/apache/flink/core/fs/Path; filePath", at most 8 fields, each part
/// clipped: error messages stay short whatever the stream holds.
fn describe_fields<'a>(fields: impl ExactSizeIterator<Item = (u8, &'a str, &'a str)>) -> String {
    const SHOWN: usize = 8;
    let count = fields.len();
    let mut parts: Vec<String> = fields
        .take(SHOWN)
        .map(|(code, name, signature)| {
            let name = clip(name);
            if signature.is_empty() {
                format!("{} {name}", code as char)
            } else {
                format!("{} {name}", clip(signature))
            }
        })
        .collect();
    if count > SHOWN {
        parts.push(format!("... {} more", count - SHOWN));
    }
    parts.join(", ")
}

/// `s`, cut to 200 characters for an error message.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

impl Stream {
    /// The type signature of a field; empty for primitives.
    fn signature(&self, field: &FieldDesc) -> &str {
        match field.signature.map(|h| &self.handles[h]) {
            Some(Entry::Str(s)) => s,
            _ => "",
        }
    }

    /// "A extends B extends C" for the class at `index` (at most 8 names, each clipped).
    fn hierarchy(&self, index: usize) -> String {
        const SHOWN: usize = 8;
        let mut out = clip(&self.classes[index].name);
        let mut next = self.classes[index].superclass.filter(|&s| s < index);
        let mut shown = 1;
        while let Some(s) = next {
            if shown == SHOWN {
                out.push_str(" extends ...");
                break;
            }
            out.push_str(" extends ");
            out.push_str(&clip(&self.classes[s].name));
            next = self.classes[s].superclass.filter(|&t| t < s);
            shown += 1;
        }
        out
    }

    /// `value` as an object of exactly `class` (with no serializable superclass), with exactly
    /// `flags`, exactly the fields of `schema` and no custom data: its field values.
    fn object(
        &self,
        value: Value,
        what: &'static str,
        class: &'static str,
        flags: u8,
        schema: Schema,
    ) -> Result<&[FieldValue], HandleError> {
        let object = match value {
            Value::Null { offset } => {
                return Err(HandleError::UnexpectedValue {
                    offset,
                    what,
                    expected: "an object",
                    found: "null",
                });
            }
            Value::Handle { offset, handle } => match &self.handles[handle] {
                Entry::Object(object) => object,
                other => {
                    return Err(HandleError::UnexpectedValue {
                        offset,
                        what,
                        expected: "an object",
                        found: other.describe(),
                    });
                }
            },
        };
        let desc = &self.classes[object.class];
        if desc.name != class || desc.superclass.is_some() {
            return Err(HandleError::UnexpectedClass {
                offset: object.offset,
                expected: class,
                found: self.hierarchy(object.class),
            });
        }
        if desc.flags != flags {
            return Err(HandleError::UnexpectedFlags {
                offset: desc.offset,
                class: desc.name.clone(),
                expected: flags,
                found: desc.flags,
            });
        }
        let matches = desc.fields.len() == schema.len()
            && desc
                .fields
                .iter()
                .zip(schema)
                .all(|(f, &(code, name, signature))| {
                    f.code == code && f.name == name && self.signature(f) == signature
                });
        if !matches {
            return Err(HandleError::UnexpectedFields {
                offset: desc.offset,
                class: desc.name.clone(),
                expected: describe_fields(schema.iter().copied()),
                found: describe_fields(
                    desc.fields
                        .iter()
                        .map(|f| (f.code, f.name.as_str(), self.signature(f))),
                ),
            });
        }
        // No superclass, so exactly one part, unless this is a reference back to an object
        // whose fields are still being read (a cycle).
        let Some(part) = object.data.first() else {
            return Err(HandleError::UnexpectedValue {
                offset: value.offset(),
                what,
                expected: "a complete object",
                found: "a reference to an enclosing object",
            });
        };
        if let Some(data_offset) = part.custom {
            return Err(HandleError::UnexpectedCustomData {
                offset: object.offset,
                class: desc.name.clone(),
                data_offset,
            });
        }
        Ok(&part.values)
    }

    fn string(&self, value: Value, what: &'static str) -> Result<&str, HandleError> {
        let (offset, found) = match value {
            Value::Null { offset } => (offset, "null"),
            Value::Handle { offset, handle } => match &self.handles[handle] {
                Entry::Str(s) => return Ok(s),
                other => (offset, other.describe()),
            },
        };
        Err(HandleError::UnexpectedValue {
            offset,
            what,
            expected: "a string",
            found,
        })
    }
}

/// The object value at `index` of a schema-checked object's values.
fn obj_at(values: &[FieldValue], index: usize) -> Result<Value, HandleError> {
    match values.get(index) {
        Some(FieldValue::Obj(v)) => Ok(*v),
        // The schema check guarantees the kind of every position; this is only a fallback.
        other => Err(missing_value(other)),
    }
}

/// The primitive bits at `index` of a schema-checked object's values.
fn prim_at(values: &[FieldValue], index: usize) -> Result<u64, HandleError> {
    match values.get(index) {
        Some(FieldValue::Prim { bits, .. }) => Ok(*bits),
        other => Err(missing_value(other)),
    }
}

fn missing_value(found: Option<&FieldValue>) -> HandleError {
    let (offset, found) = match found {
        Some(FieldValue::Prim { offset, .. }) => (*offset, "a primitive"),
        Some(FieldValue::Obj(v)) => (v.offset(), "an object"),
        None => (0, "missing"),
    };
    HandleError::UnexpectedValue {
        offset,
        what: "a field value",
        expected: "a value of the field's type",
        found,
    }
}

fn extract(stream: &Stream) -> Result<StateHandle, HandleError> {
    let top = stream.top;
    let top_object = match top {
        Value::Handle { handle, .. } => match &stream.handles[handle] {
            Entry::Object(object) => Ok(object),
            other => Err(other.describe()),
        },
        Value::Null { .. } => Err("null"),
    };
    let top_object = top_object.map_err(|found| HandleError::UnexpectedValue {
        offset: top.offset(),
        what: "the top-level value",
        expected: "an object",
        found,
    })?;
    let (kind, marked, rssh) = match stream.classes[top_object.class].name.as_str() {
        STATE_HANDLE_WITH_DELETE_MARKER => {
            let values = stream.object(
                top,
                "the top-level object",
                STATE_HANDLE_WITH_DELETE_MARKER,
                SC_SERIALIZABLE,
                DELETE_MARKER_FIELDS,
            )?;
            (
                HandleKind::StateHandleWithDeleteMarker,
                Some(prim_at(values, 0)? != 0),
                obj_at(values, 1)?,
            )
        }
        RETRIEVABLE_STREAM_STATE_HANDLE => (HandleKind::RetrievableStreamStateHandle, None, top),
        _ => {
            return Err(HandleError::UnexpectedClass {
                offset: top_object.offset,
                expected: "org.apache.flink.runtime.state.RetrievableStreamStateHandle (Flink 1.12-1.14) \
                           or org.apache.flink.kubernetes.highavailability.KubernetesStateHandleStore$StateHandleWithDeleteMarker (Flink 1.15+)",
                found: stream.hierarchy(top_object.class),
            });
        }
    };
    let values = stream.object(
        rssh,
        "field inner",
        RETRIEVABLE_STREAM_STATE_HANDLE,
        SC_SERIALIZABLE,
        RSSH_FIELDS,
    )?;
    let values = stream.object(
        obj_at(values, 0)?,
        "field wrappedStreamStateHandle",
        FILE_STATE_HANDLE,
        SC_SERIALIZABLE,
        FILE_STATE_HANDLE_FIELDS,
    )?;
    let state_size = prim_at(values, 0)? as i64;
    let values = stream.object(
        obj_at(values, 1)?,
        "field filePath",
        FLINK_PATH,
        SC_SERIALIZABLE,
        PATH_FIELDS,
    )?;
    let values = stream.object(
        obj_at(values, 0)?,
        "field uri",
        JAVA_URI,
        SC_SERIALIZABLE | SC_WRITE_METHOD,
        URI_FIELDS,
    )?;
    let path = stream.string(obj_at(values, 0)?, "field string of java.net.URI")?;
    Ok(StateHandle {
        kind,
        path: path.to_owned(),
        state_size,
        marked_for_deletion: marked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by a real Flink 1.12 JobManager into its job graph store.
    const FLINK_112_JOB_GRAPH: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAADcrNzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHQAN3MzOi8vcnRhL2ZsaW5rL2hhL2RlZmF1bHQvc3VibWl0dGVkSm9iR3JhcGgzMDdlMmQ2YTViZTh4";
    const FLINK_112_PATH: &str = "s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8";
    const FLINK_112_SIZE: i64 = 225971;

    // The fixtures below were written by Java 17's ObjectOutputStream from Flink's own classes
    // (flink-dist 1.15.4 unless said otherwise; the 1.12 value above comes out byte for byte the
    // same from 1.14.6, 1.15.4 and 1.20.3): a throwaway program built the objects (through reflection where a constructor
    // is not public, and by setting java.net.URI's `string` field directly where a URI could
    // not hold the text), serialized them and printed the base64.

    /// `StateHandleWithDeleteMarker(RetrievableStreamStateHandle(new Path(PATH_115), 48213),
    /// false)`, as Flink 1.15+ store it.
    const FLINK_115_UNMARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXKfgTvzmWVDfwIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHAAc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
    /// The same after `toDeleting()`: marked for deletion.
    const FLINK_115_MARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXKfgTvzmWVDfwIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHABc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
    const PATH_115: &str = "s3://rta/flink/ha/default/completedCheckpoint5c3e1d2a9f0b";
    /// `FLINK_115_MARKED` written by Flink 1.20.3's classes (flink-dist 1.20.3): only the
    /// wrapper's computed serialVersionUID differs.
    const FLINK_120_MARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXIbrUSA74YNfAIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHABc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
    const SIZE_115: i64 = 48213;

    /// A plain handle with size -1 whose URI string is `NON_ASCII_PATH`: two-byte, three-byte
    /// and astral characters, and a NUL.
    const JAVA_NON_ASCII: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hw//////////9zcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHQAOmhkZnM6Ly9ubjo4MDIwL2ZsaW5rL2hhL8O8bsOvY8O4ZMOpL+aXpeacrC/toL3tuIAvbnVswIBlbmR4";
    const NON_ASCII_PATH: &str = "hdfs://nn:8020/flink/ha/\u{fc}n\u{ef}c\u{f8}d\u{e9}/\u{65e5}\u{672c}/\u{1f600}/nul\u{0}end";

    /// A plain handle (size 42) whose URI string is the interned "Ljava/lang/String;": Java
    /// writes it as TC_REFERENCE to the field type signature of the same text (handle 10).
    const JAVA_INTERNED_REFERENCE: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAAAACpzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHEAfgAKeA==";

    /// `RetrievableStreamStateHandle(RelativeFileStateHandle(new Path("s3://b/chk-1/_metadata"),
    /// "_metadata", 42))`: a subclass of FileStateHandle (a superclass chain), and URI's type
    /// signature written as a reference to RelativeFileStateHandle's `Ljava/lang/String;`.
    const JAVA_RELATIVE_FILE_STATE_HANDLE: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyAEFvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5SZWxhdGl2ZUZpbGVTdGF0ZUhhbmRsZQAAAAAAAAABAgABTAAMcmVsYXRpdmVQYXRodAASTGphdmEvbGFuZy9TdHJpbmc7eHIAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAAAKnNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3EAfgAEeHB0ABZzMzovL2IvY2hrLTEvX21ldGFkYXRheHQACV9tZXRhZGF0YQ==";

    /// Long paths: Java's output is `head`, then `unit` `count` times, then `tail` (kept this
    /// way rather than as 90 KB of base64). Each path is "s3://b/" followed by the repeated unit.
    struct LongFixture {
        head: &'static str,
        unit: &'static str,
        count: usize,
        tail: &'static str,
        size: i64,
    }

    /// 65535 bytes of modified UTF-8: the longest TC_STRING.
    const JAVA_STRING_65535: LongFixture = LongFixture {
        head: "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAAAAAdzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHT//3MzOi8vYi8=",
        unit: "a",
        count: 65528,
        tail: "eA==",
        size: 7,
    };
    /// 65536 bytes: the shortest TC_LONGSTRING.
    const JAVA_STRING_65536: LongFixture = LongFixture {
        head: "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAAAAAdzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHwAAAAAAAEAAHMzOi8vYi8=",
        unit: "a",
        count: 65529,
        tail: "eA==",
        size: 7,
    };
    /// 40000 two-byte characters (80007 bytes, but fewer than 65536 UTF-16 units): Java goes
    /// by the byte length, so TC_LONGSTRING.
    const JAVA_LONG_TWO_BYTE: LongFixture = LongFixture {
        head: "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwf/////////9zcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHwAAAAAAAE4h3MzOi8vYi8=",
        unit: "\u{e9}",
        count: 40000,
        tail: "eA==",
        size: i64::MAX,
    };

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("fixture is base64")
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle present")
    }

    // --- A small stream builder for hand-made variations -------------------------------

    struct W(Vec<u8>);

    impl W {
        fn new() -> W {
            W(vec![0xAC, 0xED, 0x00, 0x05])
        }
        fn raw(mut self, bytes: &[u8]) -> W {
            self.0.extend_from_slice(bytes);
            self
        }
        fn u8(self, b: u8) -> W {
            self.raw(&[b])
        }
        fn utf(mut self, s: &str) -> W {
            write_utf(&mut self.0, s);
            self
        }
        fn string(mut self, s: &str) -> W {
            write_string_object(&mut self.0, s);
            self
        }
        fn reference(self, handle: u32) -> W {
            self.u8(TC_REFERENCE)
                .raw(&(BASE_HANDLE + handle).to_be_bytes())
        }
        /// TC_CLASSDESC up to and including its (empty) annotations; the superclass follows.
        fn desc_open(self, name: &str, flags: u8, fields: &[(u8, &str, &str)]) -> W {
            let mut w = self
                .u8(TC_CLASSDESC)
                .utf(name)
                .raw(&7i64.to_be_bytes())
                .u8(flags)
                .raw(&(fields.len() as u16).to_be_bytes());
            for &(code, name, sig) in fields {
                w = w.u8(code).utf(name);
                if !sig.is_empty() {
                    w = w.string(sig);
                }
            }
            w.u8(TC_ENDBLOCKDATA)
        }
        /// A class descriptor without serializable superclass.
        fn desc(self, name: &str, flags: u8, fields: &[(u8, &str, &str)]) -> W {
            self.desc_open(name, flags, fields).u8(TC_NULL)
        }
        fn obj(self, name: &str, flags: u8, fields: &[(u8, &str, &str)]) -> W {
            self.u8(TC_OBJECT).desc(name, flags, fields)
        }
        fn rssh(self) -> W {
            self.obj(
                RETRIEVABLE_STREAM_STATE_HANDLE,
                SC_SERIALIZABLE,
                RSSH_FIELDS,
            )
        }
        fn fsh(self, size: i64) -> W {
            self.obj(FILE_STATE_HANDLE, SC_SERIALIZABLE, FILE_STATE_HANDLE_FIELDS)
                .raw(&size.to_be_bytes())
        }
        fn path_and_uri(self, path: &str) -> W {
            self.obj(FLINK_PATH, SC_SERIALIZABLE, PATH_FIELDS)
                .obj(JAVA_URI, SC_SERIALIZABLE | SC_WRITE_METHOD, URI_FIELDS)
                .string(path)
                .u8(TC_ENDBLOCKDATA)
        }
        fn decode(&self) -> Result<StateHandle, HandleError> {
            decode(&self.0)
        }
    }

    /// A whole plain handle from the builder (every serialVersionUID 7).
    fn built_plain(path: &str, size: i64) -> W {
        W::new().rssh().fsh(size).path_and_uri(path)
    }

    // --- Fixtures -------------------------------------------------------------------------

    #[test]
    fn flink_112_fixture_decodes_and_encodes_byte_for_byte() {
        let handle = StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE);
        assert_eq!(decode_base64(FLINK_112_JOB_GRAPH), Ok(handle.clone()));
        assert_eq!(decode(&b64(FLINK_112_JOB_GRAPH)), Ok(handle.clone()));
        assert_eq!(encode(&handle), b64(FLINK_112_JOB_GRAPH));
        assert_eq!(encode_base64(&handle), FLINK_112_JOB_GRAPH);
    }

    #[test]
    fn field_signatures_are_distinct_so_the_encoder_needs_no_references() {
        let mut all: Vec<&str> = [
            DELETE_MARKER_FIELDS,
            RSSH_FIELDS,
            FILE_STATE_HANDLE_FIELDS,
            PATH_FIELDS,
            URI_FIELDS,
        ]
        .iter()
        .flat_map(|fields| fields.iter().map(|f| f.2))
        .filter(|s| !s.is_empty())
        .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn json_shape() {
        let handle = decode_base64(FLINK_112_JOB_GRAPH).unwrap();
        assert_eq!(
            serde_json::to_string(&handle).unwrap(),
            r#"{"type":"RetrievableStreamStateHandle","path":"s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8","stateSize":225971,"markedForDeletion":null}"#
        );
        let wrapped = decode_base64(FLINK_115_MARKED).unwrap();
        assert_eq!(
            serde_json::to_value(&wrapped).unwrap(),
            serde_json::json!({
                "type": "StateHandleWithDeleteMarker",
                "path": PATH_115,
                "stateSize": SIZE_115,
                "markedForDeletion": true,
            })
        );
    }

    #[test]
    fn flink_115_wrapper_fixtures() {
        for (fixture, marked) in [(FLINK_115_UNMARKED, false), (FLINK_115_MARKED, true)] {
            let handle = StateHandle::with_delete_marker(PATH_115, SIZE_115, marked);
            assert_eq!(decode_base64(fixture), Ok(handle.clone()));
            assert_eq!(encode_base64(&handle), fixture);
        }
    }

    #[test]
    fn flink_120_wrapper_fixture_differs_only_in_the_computed_serial_version_uid() {
        let handle = StateHandle::with_delete_marker(PATH_115, SIZE_115, true);
        assert_eq!(decode_base64(FLINK_120_MARKED), Ok(handle.clone()));
        let ours = encode_with_marker_suid(&handle, DELETE_MARKER_SUID_FLINK_1_20);
        assert_eq!(ours, b64(FLINK_120_MARKED));
        let java_115 = b64(FLINK_115_MARKED);
        let differing: Vec<usize> = (0..ours.len())
            .filter(|&i| ours[i] != java_115[i])
            .collect();
        let suid_at = 4 + 2 + 2 + STATE_HANDLE_WITH_DELETE_MARKER.len();
        assert!(differing.iter().all(|i| (suid_at..suid_at + 8).contains(i)));
        // Plain handles do not depend on it.
        let plain = StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE);
        assert_eq!(
            encode_with_marker_suid(&plain, DELETE_MARKER_SUID_FLINK_1_20),
            b64(FLINK_112_JOB_GRAPH)
        );
    }

    #[test]
    fn encoder_normalises_inconsistent_markers() {
        let mut wrapped = StateHandle::with_delete_marker(PATH_115, SIZE_115, false);
        wrapped.marked_for_deletion = None;
        assert_eq!(encode_base64(&wrapped), FLINK_115_UNMARKED);
        let mut plain = StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE);
        plain.marked_for_deletion = Some(true);
        assert_eq!(encode_base64(&plain), FLINK_112_JOB_GRAPH);
    }

    #[test]
    fn builder_matches_the_encoder_except_for_serial_version_uids() {
        // The builder writes serialVersionUID 7 everywhere: accepted all the same.
        let built = built_plain(FLINK_112_PATH, FLINK_112_SIZE);
        assert_ne!(built.0, b64(FLINK_112_JOB_GRAPH));
        assert_eq!(built.0.len(), b64(FLINK_112_JOB_GRAPH).len());
        assert_eq!(
            built.decode(),
            Ok(StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE))
        );
    }

    #[test]
    fn non_ascii_fixture() {
        let handle = StateHandle::new(NON_ASCII_PATH, -1);
        assert_eq!(decode_base64(JAVA_NON_ASCII), Ok(handle.clone()));
        assert_eq!(encode_base64(&handle), JAVA_NON_ASCII);
    }

    #[test]
    fn long_string_fixtures() {
        for fixture in [&JAVA_STRING_65535, &JAVA_STRING_65536, &JAVA_LONG_TWO_BYTE] {
            let mut java = b64(fixture.head);
            let mut path = String::from("s3://b/");
            for _ in 0..fixture.count {
                java.extend_from_slice(fixture.unit.as_bytes());
                path.push_str(fixture.unit);
            }
            java.extend_from_slice(&b64(fixture.tail));
            let handle = StateHandle::new(path, fixture.size);
            assert_eq!(encode(&handle), java);
            assert_eq!(decode(&java), Ok(handle));
        }
    }

    #[test]
    fn long_string_threshold_is_bytes_not_chars() {
        // 65535 bytes made of three-byte characters plus ASCII: still TC_STRING.
        let path = format!("{}{}", "\u{20ac}".repeat(21845), "");
        assert_eq!(mutf8_len(&path), 65535);
        let bytes = encode(&StateHandle::new(path.as_str(), 1));
        assert_eq!(bytes[bytes.len() - 1 - 65535 - 3], TC_STRING);
        // One NUL more (two bytes): TC_LONGSTRING.
        let longer = format!("{path}\u{0}");
        let bytes = encode(&StateHandle::new(longer.as_str(), 1));
        assert_eq!(bytes[bytes.len() - 1 - 65537 - 9], TC_LONGSTRING);
        assert_eq!(decode(&bytes).unwrap().path, longer);
    }

    #[test]
    fn java_reference_to_an_interned_string() {
        let bytes = b64(JAVA_INTERNED_REFERENCE);
        let at = bytes.len() - 6;
        assert_eq!(bytes[at..at + 5], [TC_REFERENCE, 0x00, 0x7E, 0x00, 0x0A]);
        let handle = StateHandle::new("Ljava/lang/String;", 42);
        assert_eq!(decode(&bytes), Ok(handle.clone()));
        // The encoder always writes the path as a fresh string, as Flink's URI strings are.
        let ours = encode(&handle);
        assert_ne!(ours, bytes);
        assert_eq!(decode(&ours), Ok(handle));
    }

    #[test]
    fn java_subclass_of_file_state_handle_is_reported_with_its_hierarchy() {
        let bytes = b64(JAVA_RELATIVE_FILE_STATE_HANDLE);
        // It is well formed: the generic tree holds it, with the superclass chain and the
        // back-reference resolved.
        let stream = parse(&bytes).unwrap();
        let relative = stream
            .classes
            .iter()
            .position(|c| c.name.ends_with("RelativeFileStateHandle"))
            .unwrap();
        let sup = stream.classes[relative].superclass.unwrap();
        assert_eq!(stream.classes[sup].name, FILE_STATE_HANDLE);
        let uri = stream.classes.iter().find(|c| c.name == JAVA_URI).unwrap();
        assert_eq!(stream.signature(&uri.fields[0]), "Ljava/lang/String;");
        // The handle extraction names it precisely.
        let offset = find(
            &bytes,
            b"sr\x00\x41org.apache.flink.runtime.state.filesystem.Relative",
        );
        assert_eq!(
            decode(&bytes),
            Err(HandleError::UnexpectedClass {
                offset,
                expected: FILE_STATE_HANDLE,
                found: "org.apache.flink.runtime.state.filesystem.RelativeFileStateHandle extends org.apache.flink.runtime.state.filesystem.FileStateHandle".into(),
            })
        );
    }

    #[test]
    fn every_prefix_of_a_valid_value_is_an_error() {
        for fixture in [FLINK_112_JOB_GRAPH, FLINK_115_MARKED, JAVA_NON_ASCII] {
            let bytes = b64(fixture);
            for len in 0..bytes.len() {
                let err = decode(&bytes[..len]).unwrap_err();
                assert!(
                    matches!(
                        err,
                        HandleError::Truncated { offset, .. } if offset == len
                    ) || matches!(err, HandleError::LengthExceedsInput { .. }),
                    "prefix of {len} bytes: {err}"
                );
            }
        }
    }

    // --- Modified UTF-8 -----------------------------------------------------------------

    fn mutf8(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_mutf8(&mut out, s);
        assert_eq!(out.len(), mutf8_len(s));
        out
    }

    #[test]
    fn modified_utf8_encoding() {
        assert_eq!(mutf8("A"), b"A");
        assert_eq!(mutf8("\u{0}"), [0xC0, 0x80]);
        assert_eq!(mutf8("\u{7f}"), [0x7F]);
        assert_eq!(mutf8("\u{80}"), [0xC2, 0x80]);
        assert_eq!(mutf8("\u{7ff}"), [0xDF, 0xBF]);
        assert_eq!(mutf8("\u{800}"), [0xE0, 0xA0, 0x80]);
        assert_eq!(mutf8("\u{ffff}"), [0xEF, 0xBF, 0xBF]);
        // U+1F600 is D83D DE00 in UTF-16: two three-byte sequences, not UTF-8's four bytes.
        assert_eq!(mutf8("\u{1f600}"), [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]);
        assert_eq!(mutf8("\u{10ffff}"), [0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF]);
    }

    #[test]
    fn modified_utf8_round_trip_of_edge_characters() {
        let s = "\u{0}\u{1}\u{7f}\u{80}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{fffd}\u{ffff}\u{10000}\u{10ffff}";
        assert_eq!(read_mutf8(&mutf8(s), 0).as_deref(), Ok(s));
    }

    #[test]
    fn modified_utf8_decoding_is_as_lenient_as_java() {
        // A raw NUL byte, overlong forms: Java's readUTF accepts them.
        assert_eq!(read_mutf8(&[0x00], 0).as_deref(), Ok("\u{0}"));
        assert_eq!(read_mutf8(&[0xC1, 0x81], 0).as_deref(), Ok("A"));
        assert_eq!(read_mutf8(&[0xE0, 0x80, 0x80], 0).as_deref(), Ok("\u{0}"));
    }

    #[test]
    fn modified_utf8_decoding_errors() {
        let bad = |bytes: &[u8]| read_mutf8(bytes, 100).unwrap_err();
        // Standard UTF-8's four-byte form is not modified UTF-8.
        assert_eq!(
            bad(&[b'a', 0xF0, 0x9F, 0x98, 0x80]),
            HandleError::InvalidUtf8 { offset: 101 }
        );
        // A lone continuation byte, a bad continuation, a sequence cut short.
        assert_eq!(bad(&[0x80]), HandleError::InvalidUtf8 { offset: 100 });
        assert_eq!(bad(&[0xC3, 0x41]), HandleError::InvalidUtf8 { offset: 101 });
        assert_eq!(bad(&[0xE2, 0x82]), HandleError::InvalidUtf8 { offset: 102 });
        assert_eq!(bad(&[0xC3]), HandleError::InvalidUtf8 { offset: 101 });
        // Surrogates that do not pair up.
        assert_eq!(
            bad(&[0xED, 0xA0, 0xBD]),
            HandleError::UnpairedSurrogate {
                offset: 100,
                unit: 0xD83D
            }
        );
        assert_eq!(
            bad(&[b'x', 0xED, 0xB8, 0x80]),
            HandleError::UnpairedSurrogate {
                offset: 101,
                unit: 0xDE00
            }
        );
        assert_eq!(
            bad(&[0xED, 0xA0, 0xBD, b'x']),
            HandleError::UnpairedSurrogate {
                offset: 100,
                unit: 0xD83D
            }
        );
        assert_eq!(
            bad(&[0xED, 0xA0, 0xBD, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
            HandleError::UnpairedSurrogate {
                offset: 100,
                unit: 0xD83D
            }
        );
    }

    #[test]
    fn invalid_utf8_in_a_stream_reports_its_offset() {
        let mut bytes = b64(FLINK_112_JOB_GRAPH);
        let at = find(&bytes, b"s3://rta");
        bytes[at + 2] = 0xFF;
        assert_eq!(
            decode(&bytes),
            Err(HandleError::InvalidUtf8 { offset: at + 2 })
        );
        let mut bytes = b64(FLINK_112_JOB_GRAPH);
        let at = find(&bytes, b"org.apache.flink.core.fs.Path");
        bytes[at] = 0xC0;
        assert!(matches!(
            decode(&bytes),
            Err(HandleError::InvalidUtf8 { .. })
        ));
    }

    // --- Input-level errors -------------------------------------------------------------

    #[test]
    fn too_large() {
        let big = vec![b'A'; MAX_ENCODED_LEN + 1];
        assert_eq!(
            decode(&big),
            Err(HandleError::TooLarge {
                len: MAX_ENCODED_LEN + 1,
                max: MAX_ENCODED_LEN
            })
        );
        let text = String::from_utf8(big).unwrap();
        assert_eq!(
            decode_base64(&text),
            Err(HandleError::TooLarge {
                len: MAX_ENCODED_LEN + 1,
                max: MAX_ENCODED_LEN
            })
        );
        // Surrounding whitespace does not count.
        let padded = format!("\n{}\n", &text[..MAX_ENCODED_LEN]);
        assert!(matches!(
            decode_base64(&padded),
            Err(HandleError::BadMagic { .. })
        ));
    }

    #[test]
    fn base64_handling() {
        let expected = Ok(StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE));
        assert_eq!(
            decode_base64(&format!(" \t\r\n{FLINK_112_JOB_GRAPH}\r\n")),
            expected
        );
        // Java's decoder does not insist on padding; neither does this one.
        let unpadded = FLINK_115_MARKED.trim_end_matches('=');
        assert_ne!(unpadded, FLINK_115_MARKED);
        assert!(decode_base64(unpadded).is_ok());
        assert!(matches!(
            decode_base64("rO0A BXNy"),
            Err(HandleError::Base64(base64::DecodeError::InvalidByte(
                4, b' '
            )))
        ));
        assert!(matches!(
            decode_base64("rO0ABX-y"),
            Err(HandleError::Base64(_))
        ));
        assert!(matches!(
            decode_base64("rO0AB"),
            Err(HandleError::Base64(_))
        ));
        assert_eq!(
            decode_base64(""),
            Err(HandleError::Truncated {
                offset: 0,
                what: "the stream header"
            })
        );
        let err = decode_base64("rO0A BXNy").unwrap_err().to_string();
        assert!(err.starts_with("invalid base64"), "{err}");
    }

    #[test]
    fn bad_header() {
        assert_eq!(
            decode(&[0xCA, 0xFE, 0x00, 0x05]),
            Err(HandleError::BadMagic { found: 0xCAFE })
        );
        assert_eq!(
            decode(&[0xAC, 0xED, 0x00, 0x04]),
            Err(HandleError::BadVersion { found: 4 })
        );
        assert_eq!(
            decode(&[0xAC, 0xED, 0x00]),
            Err(HandleError::Truncated {
                offset: 3,
                what: "the stream header"
            })
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = b64(FLINK_112_JOB_GRAPH);
        let len = bytes.len();
        bytes.extend_from_slice(&[TC_NULL, TC_NULL]);
        assert_eq!(
            decode(&bytes),
            Err(HandleError::TrailingBytes {
                offset: len,
                count: 2
            })
        );
    }

    // --- Lengths ------------------------------------------------------------------------

    #[test]
    fn absurd_lengths_are_checked_before_allocating() {
        // A class name that claims 65535 bytes.
        assert_eq!(
            W::new()
                .u8(TC_OBJECT)
                .u8(TC_CLASSDESC)
                .raw(&[0xFF, 0xFF, b'a'])
                .decode(),
            Err(HandleError::LengthExceedsInput {
                offset: 6,
                what: "a class name",
                len: 0xFFFF,
                remaining: 1
            })
        );
        // A long string of u64::MAX / i64::MAX bytes, and a negative one.
        assert_eq!(
            W::new()
                .u8(TC_LONGSTRING)
                .raw(&i64::MAX.to_be_bytes())
                .decode(),
            Err(HandleError::LengthExceedsInput {
                offset: 5,
                what: "a string",
                len: i64::MAX as u64,
                remaining: 0
            })
        );
        assert_eq!(
            W::new()
                .u8(TC_LONGSTRING)
                .raw(&(-1i64).to_be_bytes())
                .decode(),
            Err(HandleError::NegativeLength {
                offset: 5,
                what: "long string",
                len: -1
            })
        );
        assert_eq!(
            W::new().u8(TC_STRING).raw(&[0x00, 0x05, b'a']).decode(),
            Err(HandleError::LengthExceedsInput {
                offset: 5,
                what: "a string",
                len: 5,
                remaining: 1
            })
        );
    }

    /// A top-level object of class `C` with a writeObject method and no fields, whose custom
    /// data is `custom` (which must end the stream with TC_ENDBLOCKDATA itself).
    fn with_custom_data(custom: &[u8]) -> W {
        W::new()
            .obj("C", SC_SERIALIZABLE | SC_WRITE_METHOD, &[])
            .raw(custom)
    }

    #[test]
    fn block_data_lengths() {
        let header = with_custom_data(&[]).0.len();
        assert_eq!(
            with_custom_data(&[TC_BLOCKDATALONG, 0x80, 0, 0, 0]).decode(),
            Err(HandleError::NegativeLength {
                offset: header + 1,
                what: "block data",
                len: i64::from(i32::MIN)
            })
        );
        assert_eq!(
            with_custom_data(&[TC_BLOCKDATALONG, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2]).decode(),
            Err(HandleError::LengthExceedsInput {
                offset: header + 1,
                what: "block data",
                len: 0x7FFF_FFFF,
                remaining: 2
            })
        );
        assert_eq!(
            with_custom_data(&[TC_BLOCKDATA, 3, 1]).decode(),
            Err(HandleError::LengthExceedsInput {
                offset: header + 1,
                what: "block data",
                len: 3,
                remaining: 1
            })
        );
        // Well-formed block data parses; it is just not a state handle.
        assert!(matches!(
            with_custom_data(&[
                TC_BLOCKDATA,
                2,
                1,
                2,
                TC_BLOCKDATALONG,
                0,
                0,
                0,
                1,
                9,
                TC_ENDBLOCKDATA
            ])
            .decode(),
            Err(HandleError::UnexpectedClass { offset: 4, .. })
        ));
        // Custom data never ended.
        assert_eq!(
            with_custom_data(&[TC_BLOCKDATA, 0]).decode(),
            Err(HandleError::Truncated {
                offset: header + 2,
                what: "custom data or TC_ENDBLOCKDATA"
            })
        );
    }

    // --- Type codes ---------------------------------------------------------------------

    #[test]
    fn unknown_and_unsupported_type_codes() {
        assert_eq!(
            W::new().u8(0x42).decode(),
            Err(HandleError::UnknownTypeCode {
                offset: 4,
                code: 0x42
            })
        );
        for (code, what) in [
            (TC_ARRAY, "array"),
            (TC_CLASS, "Class object"),
            (TC_RESET, "stream reset"),
            (TC_EXCEPTION, "exception"),
            (TC_ENUM, "enum constant"),
            (TC_PROXYCLASSDESC, "proxy class descriptor"),
        ] {
            assert_eq!(
                W::new().u8(code).decode(),
                Err(HandleError::Unsupported {
                    offset: 4,
                    code,
                    what
                })
            );
        }
        // A proxy class where an object's class descriptor goes.
        assert_eq!(
            W::new().u8(TC_OBJECT).u8(TC_PROXYCLASSDESC).decode(),
            Err(HandleError::Unsupported {
                offset: 5,
                code: TC_PROXYCLASSDESC,
                what: "proxy class descriptor"
            })
        );
        // An array as a field value deep inside a handle.
        let w = W::new().rssh().u8(TC_ARRAY);
        let at = w.0.len() - 1;
        assert_eq!(
            w.decode(),
            Err(HandleError::Unsupported {
                offset: at,
                code: TC_ARRAY,
                what: "array"
            })
        );
    }

    #[test]
    fn misplaced_type_codes() {
        for code in [
            TC_BLOCKDATA,
            TC_ENDBLOCKDATA,
            TC_CLASSDESC,
            TC_BLOCKDATALONG,
        ] {
            assert_eq!(
                W::new().u8(code).decode(),
                Err(HandleError::UnexpectedTypeCode {
                    offset: 4,
                    code,
                    found: type_code_name(code),
                    expected: "the top-level object"
                })
            );
        }
        // An object without a class.
        assert_eq!(
            W::new().u8(TC_OBJECT).u8(TC_NULL).decode(),
            Err(HandleError::UnexpectedTypeCode {
                offset: 5,
                code: TC_NULL,
                found: "TC_NULL",
                expected: "a class descriptor"
            })
        );
        // A field type signature that is not a string.
        let w = W::new()
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf("C")
            .raw(&[0; 8])
            .u8(SC_SERIALIZABLE)
            .raw(&[0, 1])
            .u8(b'L')
            .utf("f");
        let at = w.0.len();
        assert_eq!(
            w.u8(TC_NULL).decode(),
            Err(HandleError::UnexpectedTypeCode {
                offset: at,
                code: TC_NULL,
                found: "TC_NULL",
                expected: "a field type signature"
            })
        );
    }

    // --- References ---------------------------------------------------------------------

    #[test]
    fn references_to_unknown_handles() {
        assert_eq!(
            W::new().reference(0).decode(),
            Err(HandleError::UnknownHandle {
                offset: 4,
                handle: 0x7E_0000,
                assigned: 0
            })
        );
        assert_eq!(
            W::new().u8(TC_REFERENCE).raw(&[0, 0, 0, 1]).decode(),
            Err(HandleError::UnknownHandle {
                offset: 4,
                handle: 1,
                assigned: 0
            })
        );
        assert_eq!(
            W::new()
                .u8(TC_REFERENCE)
                .raw(&[0xFF, 0xFF, 0xFF, 0xFF])
                .decode(),
            Err(HandleError::UnknownHandle {
                offset: 4,
                handle: u32::MAX,
                assigned: 0
            })
        );
        let w = W::new().obj("C", SC_SERIALIZABLE, &[(b'L', "f", "LC;")]);
        // The signature string took handle 1, so the object is 2 and 3 is unknown.
        let at = w.0.len();
        assert_eq!(
            w.reference(3).decode(),
            Err(HandleError::UnknownHandle {
                offset: at,
                handle: 0x7E_0003,
                assigned: 3
            })
        );
    }

    #[test]
    fn references_of_the_wrong_kind() {
        // A field value that refers to a class descriptor.
        let w = W::new().obj("C", SC_SERIALIZABLE, &[(b'L', "f", "LC;")]);
        let at = w.0.len();
        assert_eq!(
            w.reference(0).decode(),
            Err(HandleError::WrongHandle {
                offset: at,
                handle: 0x7E_0000,
                found: "a class descriptor",
                expected: "an object or a string"
            })
        );
        // A class descriptor whose superclass is itself (still being read).
        let w = W::new().u8(TC_OBJECT).desc_open("C", SC_SERIALIZABLE, &[]);
        let at = w.0.len();
        assert_eq!(
            w.reference(0).decode(),
            Err(HandleError::WrongHandle {
                offset: at,
                handle: 0x7E_0000,
                found: "a class descriptor still being read",
                expected: "a complete class descriptor"
            })
        );
        // An object's class that refers to a string.
        let w = W::new().obj("C", SC_SERIALIZABLE, &[(b'L', "f", "LC;")]);
        let at = w.0.len() + 1;
        assert_eq!(
            w.u8(TC_OBJECT).reference(1).decode(),
            Err(HandleError::WrongHandle {
                offset: at,
                handle: 0x7E_0001,
                found: "a string",
                expected: "a complete class descriptor"
            })
        );
        // A type signature that refers to a class descriptor.
        let w = W::new()
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf("C")
            .raw(&[0; 8])
            .u8(SC_SERIALIZABLE)
            .raw(&[0, 1])
            .u8(b'L')
            .utf("f");
        let at = w.0.len();
        assert_eq!(
            w.reference(0).decode(),
            Err(HandleError::WrongHandle {
                offset: at,
                handle: 0x7E_0000,
                found: "a class descriptor still being read",
                expected: "a string"
            })
        );
    }

    #[test]
    fn references_in_the_generic_tree() {
        // Pair { Point a; Point b }: a refers to itself (a cycle), b is a second Point whose
        // class is a descriptor reference.
        let point = [(b'I', "x", ""), (b'L', "self", "LPoint;")];
        let w = W::new()
            .obj(
                "Pair",
                SC_SERIALIZABLE,
                &[(b'L', "a", "LPoint;"), (b'L', "b", "LPoint;")],
            )
            // handles: 0 Pair desc, 1 and 2 the signatures (this builder does not share
            // them), 3 the Pair object
            .u8(TC_OBJECT)
            .desc("Point", SC_SERIALIZABLE, &point)
            // 4 Point desc, 5 "LPoint;", 6 the first Point, whose `self` is itself
            .raw(&1i32.to_be_bytes())
            .reference(6)
            // 7 the second Point, through a reference to descriptor 4, `self` null
            .u8(TC_OBJECT)
            .reference(4)
            .raw(&2i32.to_be_bytes())
            .u8(TC_NULL);
        let stream = parse(&w.0).unwrap();
        assert_eq!(stream.classes.len(), 2);
        assert_eq!(stream.handles.len(), 8);
        let Entry::Object(pair) = &stream.handles[3] else {
            panic!("handle 3 is the pair")
        };
        assert_eq!(stream.classes[pair.class].name, "Pair");
        assert!(matches!(
            pair.data[0].values[..],
            [
                FieldValue::Obj(Value::Handle { handle: 6, .. }),
                FieldValue::Obj(Value::Handle { handle: 7, .. })
            ]
        ));
        let Entry::Object(first) = &stream.handles[6] else {
            panic!("handle 6 is a point")
        };
        assert!(matches!(
            first.data[0].values[1],
            FieldValue::Obj(Value::Handle { handle: 6, .. })
        ));
        let Entry::Object(second) = &stream.handles[7] else {
            panic!("handle 7 is a point")
        };
        assert_eq!(second.class, first.class);
        assert!(matches!(
            second.data[0].values[..],
            [
                FieldValue::Prim { bits: 2, .. },
                FieldValue::Obj(Value::Null { .. })
            ]
        ));
        // And the whole is reported as the wrong class, at its TC_OBJECT.
        assert!(matches!(
            decode(&w.0),
            Err(HandleError::UnexpectedClass { offset: 4, ref found, .. }) if found == "Pair"
        ));
    }

    #[test]
    fn shared_type_signatures_and_paths_by_reference() {
        // The URI's type signature refers back to an earlier "Ljava/lang/String;", and the
        // path string is a reference too: a valid handle for Java, and for us.
        let w = W::new()
            .rssh() // 0 desc, 1 signature, 2 object
            .fsh(5) // 3 desc, 4 signature, 5 object
            .obj(FLINK_PATH, SC_SERIALIZABLE, PATH_FIELDS) // 6, 7, 8
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf(JAVA_URI)
            .raw(&JAVA_URI_SUID.to_be_bytes())
            .u8(SC_SERIALIZABLE | SC_WRITE_METHOD)
            .raw(&[0, 1])
            .u8(b'L')
            .utf("string")
            .reference(1) // "Lorg/apache/flink/runtime/state/StreamStateHandle;"
            .u8(TC_ENDBLOCKDATA)
            .u8(TC_NULL);
        // That signature is wrong for URI, and said so:
        assert!(matches!(
            w.raw(&[TC_NULL, TC_ENDBLOCKDATA]).decode(),
            Err(HandleError::UnexpectedFields { ref class, .. }) if class == JAVA_URI
        ));
        let w = W::new()
            .rssh()
            .fsh(5)
            .obj(FLINK_PATH, SC_SERIALIZABLE, PATH_FIELDS)
            .obj(JAVA_URI, SC_SERIALIZABLE | SC_WRITE_METHOD, URI_FIELDS)
            // 9 URI desc, 10 "Ljava/lang/String;", 11 URI object; the path refers to 4.
            .reference(4)
            .u8(TC_ENDBLOCKDATA);
        assert_eq!(
            w.decode(),
            Ok(StateHandle::new("Lorg/apache/flink/core/fs/Path;", 5))
        );
    }

    // --- Bounds -------------------------------------------------------------------------

    #[test]
    fn too_many_handles() {
        // Descriptor and object take handles 0 and 1; 1022 strings fit, the next does not.
        let mut custom = Vec::new();
        for _ in 0..MAX_HANDLES {
            custom.extend_from_slice(&[TC_STRING, 0, 0]);
        }
        custom.push(TC_ENDBLOCKDATA);
        let header = with_custom_data(&[]).0.len();
        assert_eq!(
            with_custom_data(&custom).decode(),
            Err(HandleError::TooManyHandles {
                offset: header + 3 * (MAX_HANDLES - 2),
                max: MAX_HANDLES
            })
        );
        // Exactly MAX_HANDLES is fine (and the result is just not a handle).
        let mut custom = [TC_STRING, 0, 0].repeat(MAX_HANDLES - 2);
        custom.push(TC_ENDBLOCKDATA);
        assert!(matches!(
            with_custom_data(&custom).decode(),
            Err(HandleError::UnexpectedClass { .. })
        ));
    }

    #[test]
    fn nesting_of_objects_is_bounded() {
        // Node { Node next } nested: every object is one level, its new descriptor another.
        let nested = |levels: usize| {
            let mut w = W::new().obj("Node", SC_SERIALIZABLE, &[(b'L', "next", "LNode;")]);
            for _ in 1..levels {
                w = w.u8(TC_OBJECT).reference(0);
            }
            w.u8(TC_NULL)
        };
        assert!(matches!(
            nested(MAX_DEPTH).decode(),
            Err(HandleError::UnexpectedClass { .. })
        ));
        let w = nested(MAX_DEPTH + 1);
        // The 17th TC_OBJECT is the one refused.
        let first_inner = nested(1).0.len() - 1;
        assert_eq!(
            w.decode(),
            Err(HandleError::TooDeep {
                offset: first_inner + 6 * (MAX_DEPTH - 1),
                max: MAX_DEPTH
            })
        );
        // 150000 levels (900 KB) fail the same way, without exhausting the stack.
        let mut deep = W::new().obj("Node", SC_SERIALIZABLE, &[(b'L', "next", "LNode;")]);
        for _ in 0..150_000 {
            deep = deep.u8(TC_OBJECT).reference(0);
        }
        assert!(matches!(deep.decode(), Err(HandleError::TooDeep { .. })));
    }

    #[test]
    fn nesting_of_superclasses_is_bounded() {
        let chain = |levels: usize| {
            let mut w = W::new().u8(TC_OBJECT);
            for i in 0..levels {
                w = w.desc_open(&format!("C{i}"), SC_SERIALIZABLE, &[]);
            }
            w.u8(TC_NULL)
        };
        // The object is one level, so 15 descriptors fit.
        let ok = chain(MAX_DEPTH - 1);
        let stream = parse(&ok.0).unwrap();
        let Entry::Object(object) = &stream.handles[MAX_DEPTH - 1] else {
            panic!("the object follows the descriptors")
        };
        assert_eq!(object.data.len(), MAX_DEPTH - 1);
        assert_eq!(
            decode(&ok.0),
            Err(HandleError::UnexpectedClass {
                offset: 4,
                expected: "org.apache.flink.runtime.state.RetrievableStreamStateHandle (Flink 1.12-1.14) or org.apache.flink.kubernetes.highavailability.KubernetesStateHandleStore$StateHandleWithDeleteMarker (Flink 1.15+)",
                // The message shows eight of the fifteen.
                found: (0..8)
                    .map(|i| format!("C{i}"))
                    .collect::<Vec<_>>()
                    .join(" extends ")
                    + " extends ...",
            })
        );
        assert!(matches!(
            chain(MAX_DEPTH).decode(),
            Err(HandleError::TooDeep { max: MAX_DEPTH, .. })
        ));
    }

    #[test]
    fn one_long_signature_shared_by_many_fields_is_not_copied() {
        // 60000 fields whose signatures all refer to one 400 KB string: kept by handle, and the
        // error message lists only a few fields, clipped.
        let long_signature = format!("L{};", "a".repeat(400_000));
        let mut w = W::new()
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf(RETRIEVABLE_STREAM_STATE_HANDLE)
            .raw(&[0; 8])
            .u8(SC_SERIALIZABLE)
            .raw(&60_001u16.to_be_bytes())
            .u8(b'L')
            .utf("f")
            .string(&long_signature);
        for _ in 0..60_000 {
            w = w.u8(b'L').utf("").reference(1);
        }
        w = w.u8(TC_ENDBLOCKDATA).u8(TC_NULL);
        for _ in 0..60_001 {
            w = w.u8(TC_NULL);
        }
        assert!(w.0.len() < MAX_ENCODED_LEN);
        let err = w.decode().unwrap_err();
        assert!(
            matches!(err, HandleError::UnexpectedFields { offset: 5, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.len() < 3000, "{} bytes", msg.len());
        assert!(msg.contains("... 59993 more"), "{msg}");
    }

    // --- Descriptors --------------------------------------------------------------------

    #[test]
    fn class_flags() {
        for flags in [0x00, 0x01, 0x04, 0x06, 0x0A, 0x12, 0x42] {
            assert_eq!(
                W::new().obj("C", flags, &[]).decode(),
                Err(HandleError::UnsupportedClassFlags {
                    offset: 4 + 1 + 1 + 3 + 8,
                    class: "C".into(),
                    flags
                }),
                "flags {flags:#x}"
            );
        }
    }

    #[test]
    fn field_descriptors() {
        let fields_at = 4 + 1 + 1 + 3 + 8 + 1 + 2;
        assert_eq!(
            W::new()
                .obj("C", SC_SERIALIZABLE, &[(b'X', "f", "")])
                .decode(),
            Err(HandleError::InvalidFieldType {
                offset: fields_at,
                code: b'X'
            })
        );
        assert_eq!(
            W::new()
                .obj("C", SC_SERIALIZABLE, &[(b'L', "f", "Ifoo")])
                .decode(),
            Err(HandleError::InvalidFieldSignature {
                offset: fields_at + 4,
                signature: "Ifoo".into()
            })
        );
        assert_eq!(
            W::new()
                .obj("C", SC_SERIALIZABLE, &[(b'L', "o", "LC;"), (b'I', "i", "")])
                .decode(),
            Err(HandleError::FieldOrder {
                offset: fields_at + 4 + 6,
                class: "C".into(),
                field: "i".into()
            })
        );
        // A field count far beyond the input.
        let w = W::new()
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf("C")
            .raw(&[0; 8])
            .u8(SC_SERIALIZABLE)
            .raw(&[0xFF, 0xFF]);
        assert!(matches!(w.decode(), Err(HandleError::Truncated { .. })));
        // Every primitive type parses (values zero-extended, big-endian).
        let prims: Vec<(u8, &str, &str)> = vec![
            (b'B', "b", ""),
            (b'C', "c", ""),
            (b'D', "d", ""),
            (b'F', "f", ""),
            (b'I', "i", ""),
            (b'J', "j", ""),
            (b'S', "s", ""),
            (b'Z', "z", ""),
            (b'[', "a", "[B"),
        ];
        let w = W::new()
            .obj("C", SC_SERIALIZABLE, &prims)
            .raw(&[1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5])
            .raw(&[0, 0, 0, 0, 0, 0, 0, 6, 0, 7, 1, TC_NULL]);
        let stream = parse(&w.0).unwrap();
        let Entry::Object(object) = &stream.handles[2] else {
            panic!("object after descriptor and signature")
        };
        let bits: Vec<u64> = object.data[0]
            .values
            .iter()
            .filter_map(|v| match v {
                FieldValue::Prim { bits, .. } => Some(*bits),
                FieldValue::Obj(_) => None,
            })
            .collect();
        assert_eq!(bits, [1, 2, 3, 4, 5, 6, 7, 1]);
    }

    #[test]
    fn serial_version_uids_are_not_checked() {
        let mut bytes = b64(FLINK_112_JOB_GRAPH);
        let at = find(&bytes, b"RetrievableStreamStateHandle") + 28;
        bytes[at..at + 8].copy_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(
            decode(&bytes),
            Ok(StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE))
        );
    }

    #[test]
    fn class_annotations_are_skipped() {
        // RSSH's descriptor with annotations: block data and a string, then the rest.
        let w = W::new()
            .u8(TC_OBJECT)
            .u8(TC_CLASSDESC)
            .utf(RETRIEVABLE_STREAM_STATE_HANDLE)
            .raw(&RETRIEVABLE_STREAM_STATE_HANDLE_SUID.to_be_bytes())
            .u8(SC_SERIALIZABLE)
            .raw(&[0, 1])
            .u8(b'L')
            .utf("wrappedStreamStateHandle")
            .string("Lorg/apache/flink/runtime/state/StreamStateHandle;")
            .raw(&[TC_BLOCKDATA, 2, 0xAB, 0xCD])
            .string("codebase")
            .u8(TC_ENDBLOCKDATA)
            .u8(TC_NULL)
            .fsh(3)
            .path_and_uri("file:/x");
        assert_eq!(w.decode(), Ok(StateHandle::new("file:/x", 3)));
    }

    #[test]
    fn boolean_marker_is_any_nonzero_byte() {
        let mut bytes = b64(FLINK_115_UNMARKED);
        let at = find(&bytes, b"RetrievableStateHandle;") + 23 + 2;
        assert_eq!(bytes[at], 0);
        bytes[at] = 0x02;
        assert_eq!(
            decode(&bytes),
            Ok(StateHandle::with_delete_marker(PATH_115, SIZE_115, true))
        );
    }

    // --- Shape checks -------------------------------------------------------------------

    #[test]
    fn unexpected_classes() {
        let top = W::new().obj("com.example.Other", SC_SERIALIZABLE, &[]);
        assert!(matches!(
            top.decode(),
            Err(HandleError::UnexpectedClass { offset: 4, ref found, .. }) if found == "com.example.Other"
        ));
        // A wrapper whose inner handle is something else.
        let w = W::new()
            .obj(
                STATE_HANDLE_WITH_DELETE_MARKER,
                SC_SERIALIZABLE,
                DELETE_MARKER_FIELDS,
            )
            .u8(1);
        let at = w.0.len();
        assert_eq!(
            w.obj("com.example.Other", SC_SERIALIZABLE, &[]).decode(),
            Err(HandleError::UnexpectedClass {
                offset: at,
                expected: RETRIEVABLE_STREAM_STATE_HANDLE,
                found: "com.example.Other".into()
            })
        );
        // The right name with a superclass.
        let w = W::new()
            .u8(TC_OBJECT)
            .desc_open(
                RETRIEVABLE_STREAM_STATE_HANDLE,
                SC_SERIALIZABLE,
                RSSH_FIELDS,
            )
            .desc("Base", SC_SERIALIZABLE, &[])
            .fsh(1)
            .path_and_uri("file:/x");
        assert_eq!(
            w.decode(),
            Err(HandleError::UnexpectedClass {
                offset: 4,
                expected: RETRIEVABLE_STREAM_STATE_HANDLE,
                found: format!("{RETRIEVABLE_STREAM_STATE_HANDLE} extends Base")
            })
        );
    }

    #[test]
    fn unexpected_fields() {
        let w = W::new()
            .rssh()
            .obj(
                FILE_STATE_HANDLE,
                SC_SERIALIZABLE,
                &[
                    (b'I', "extra", ""),
                    (b'J', "stateSize", ""),
                    (b'L', "filePath", "Lorg/apache/flink/core/fs/Path;"),
                ],
            )
            .raw(&[0, 0, 0, 9])
            .raw(&1i64.to_be_bytes())
            .path_and_uri("file:/x");
        let at = find(&w.0, b"sr\x00\x39org.apache.flink.runtime.state.filesystem") + 1;
        assert_eq!(
            w.decode(),
            Err(HandleError::UnexpectedFields {
                offset: at,
                class: FILE_STATE_HANDLE.into(),
                expected: "J stateSize, Lorg/apache/flink/core/fs/Path; filePath".into(),
                found: "I extra, J stateSize, Lorg/apache/flink/core/fs/Path; filePath".into()
            })
        );
        let msg = w.decode().unwrap_err().to_string();
        assert!(
            msg.contains("I extra") && msg.contains(&format!("byte {at}")),
            "{msg}"
        );
    }

    #[test]
    fn unexpected_flags_and_custom_data() {
        // Path claiming a writeObject method (with empty custom data).
        let w = W::new()
            .rssh()
            .fsh(1)
            .obj(FLINK_PATH, SC_SERIALIZABLE | SC_WRITE_METHOD, PATH_FIELDS)
            .obj(JAVA_URI, SC_SERIALIZABLE | SC_WRITE_METHOD, URI_FIELDS)
            .string("file:/x")
            .u8(TC_ENDBLOCKDATA)
            .u8(TC_ENDBLOCKDATA);
        assert!(matches!(
            w.decode(),
            Err(HandleError::UnexpectedFlags { found: 3, expected: 2, ref class, .. }) if class == FLINK_PATH
        ));
        // URI with more custom data after its field.
        let w = W::new()
            .rssh()
            .fsh(1)
            .obj(FLINK_PATH, SC_SERIALIZABLE, PATH_FIELDS)
            .obj(JAVA_URI, SC_SERIALIZABLE | SC_WRITE_METHOD, URI_FIELDS)
            .string("file:/x");
        let data_at = w.0.len();
        let uri_at = find(&w.0, b"sr\x00\x0cjava.net.URI");
        assert_eq!(
            w.raw(&[TC_BLOCKDATA, 1, 0, TC_ENDBLOCKDATA]).decode(),
            Err(HandleError::UnexpectedCustomData {
                offset: uri_at,
                class: JAVA_URI.into(),
                data_offset: data_at
            })
        );
    }

    #[test]
    fn unexpected_values() {
        // Top level null, string.
        assert_eq!(
            W::new().u8(TC_NULL).decode(),
            Err(HandleError::UnexpectedValue {
                offset: 4,
                what: "the top-level value",
                expected: "an object",
                found: "null"
            })
        );
        assert_eq!(
            W::new().string("s3://x").decode(),
            Err(HandleError::UnexpectedValue {
                offset: 4,
                what: "the top-level value",
                expected: "an object",
                found: "a string"
            })
        );
        // filePath null.
        let w = W::new().rssh().fsh(1);
        let at = w.0.len();
        assert_eq!(
            w.u8(TC_NULL).decode(),
            Err(HandleError::UnexpectedValue {
                offset: at,
                what: "field filePath",
                expected: "an object",
                found: "null"
            })
        );
        // The URI's string null, or an object.
        let w = W::new()
            .rssh()
            .fsh(1)
            .obj(FLINK_PATH, SC_SERIALIZABLE, PATH_FIELDS)
            .obj(JAVA_URI, SC_SERIALIZABLE | SC_WRITE_METHOD, URI_FIELDS);
        let at = w.0.len();
        assert_eq!(
            W(w.0.clone()).raw(&[TC_NULL, TC_ENDBLOCKDATA]).decode(),
            Err(HandleError::UnexpectedValue {
                offset: at,
                what: "field string of java.net.URI",
                expected: "a string",
                found: "null"
            })
        );
        assert_eq!(
            w.reference(2).u8(TC_ENDBLOCKDATA).decode(),
            Err(HandleError::UnexpectedValue {
                offset: at,
                what: "field string of java.net.URI",
                expected: "a string",
                found: "an object"
            })
        );
        // The wrapper's inner handle as a back-reference to the wrapper itself (a cycle).
        let w = W::new()
            .obj(
                STATE_HANDLE_WITH_DELETE_MARKER,
                SC_SERIALIZABLE,
                DELETE_MARKER_FIELDS,
            )
            .u8(0);
        assert!(matches!(
            w.reference(2).decode(),
            Err(HandleError::UnexpectedClass { offset: 4, ref found, .. })
                if found == STATE_HANDLE_WITH_DELETE_MARKER
        ));
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            decode(&[0xAC, 0xED, 0, 5, 0x42]).unwrap_err(),
            W::new().reference(9).decode().unwrap_err(),
            decode_base64(JAVA_RELATIVE_FILE_STATE_HANDLE).unwrap_err(),
        ];
        for err in cases {
            let msg = err.to_string();
            assert!(msg.contains("at byte"), "{msg}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Any character, with NUL, two-byte and astral (surrogate pair) ones made likely.
    fn ch() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => any::<char>(),
            1 => Just('\0'),
            1 => proptest::char::range('\u{80}', '\u{7ff}'),
            1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        ]
    }

    /// Arbitrary Unicode (NUL, surrogate-pair characters and all), mostly short, sometimes
    /// 60000–70000 bytes of modified UTF-8, across the TC_STRING/TC_LONGSTRING boundary.
    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => vec(ch(), 0..100).prop_map(|c| c.into_iter().collect()),
            1 => (vec(ch(), 1..8), 60_000usize..70_000).prop_map(|(unit, target)| {
                let mut s = String::new();
                let mut len = 0;
                for c in unit.iter().cycle() {
                    if len >= target {
                        break;
                    }
                    s.push(*c);
                    len += mutf8_len(c.encode_utf8(&mut [0; 4]));
                }
                s
            }),
        ]
    }

    fn handle() -> impl Strategy<Value = StateHandle> {
        (path(), any::<i64>(), any::<Option<bool>>()).prop_map(
            |(path, size, marker)| match marker {
                None => StateHandle::new(path, size),
                Some(marked) => StateHandle::with_delete_marker(path, size, marked),
            },
        )
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Insert(usize, Vec<u8>),
        Remove(usize, usize),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<usize>(), 1usize..6).prop_map(|(i, n)| Mutation::Remove(i, n)),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b ^= x;
                }
            }
            Mutation::Set(i, v) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b = *v;
                }
            }
            Mutation::Insert(i, new) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }

    /// Whatever decodes must re-encode to something that decodes to the same handle.
    fn check_consistent(result: Result<StateHandle, HandleError>) {
        if let Ok(handle) = result {
            assert_eq!(decode(&encode(&handle)), Ok(handle));
        }
    }

    proptest! {
        #[test]
        fn round_trip(h in handle()) {
            let bytes = encode(&h);
            prop_assert_eq!(decode(&bytes), Ok(h.clone()));
            prop_assert_eq!(decode_base64(&encode_base64(&h)), Ok(h.clone()));
            prop_assert_eq!(
                decode(&encode_with_marker_suid(&h, DELETE_MARKER_SUID_FLINK_1_20)),
                Ok(h.clone())
            );
            // The string's tag sits before its bytes and the final TC_ENDBLOCKDATA.
            let len = mutf8_len(&h.path);
            let tag_at = if len <= 0xFFFF { bytes.len() - 1 - len - 3 } else { bytes.len() - 1 - len - 9 };
            prop_assert_eq!(bytes[tag_at], if len <= 0xFFFF { TC_STRING } else { TC_LONGSTRING });
        }

        #[test]
        fn modified_utf8_round_trip(s in path()) {
            let mut bytes = Vec::new();
            write_mutf8(&mut bytes, &s);
            prop_assert_eq!(bytes.len(), mutf8_len(&s));
            prop_assert!(!bytes.contains(&0), "no raw NUL bytes");
            prop_assert_eq!(read_mutf8(&bytes, 0), Ok(s));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..2048)) {
            check_consistent(decode(&bytes));
            // With a valid header the parser gets further.
            let mut with_header = vec![0xAC, 0xED, 0x00, 0x05];
            with_header.extend_from_slice(&bytes);
            check_consistent(decode(&with_header));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_streams_of_type_codes(
            codes in vec(prop_oneof![0x70u8..=0x7E, any::<u8>(), Just(0u8)], 0..512),
        ) {
            let mut bytes = vec![0xAC, 0xED, 0x00, 0x05];
            bytes.extend_from_slice(&codes);
            check_consistent(decode(&bytes));
        }

        #[test]
        fn decode_base64_never_panics(s in ".{0,600}") {
            check_consistent(decode_base64(&s));
        }

        #[test]
        fn decode_never_panics_on_mutations(h in handle(), mutations in vec(mutation(), 1..6)) {
            let mut bytes = encode(&h);
            for m in &mutations {
                apply(&mut bytes, m);
            }
            check_consistent(decode(&bytes));
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            check_consistent(decode_base64(&text));
        }
    }
}
