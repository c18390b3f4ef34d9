//! JSON Schemas of the API messages, derived from the compiled proto's descriptor set,
//! so that the REST bodies (the proto3 JSON mapping, as pbjson writes it) and their
//! documentation (the proto comments) cannot drift from the proto.
//!
//! The mapping, as pbjson implements it with `emit_fields`: field names are the
//! lowerCamelCase `json_name`; in answers scalars and repeated fields are always
//! present, message fields, proto3 `optional` fields and `oneof` members only when
//! set; in requests any field may be left out; 64-bit integers are decimal strings;
//! enums are their value names; timestamps are RFC 3339 strings in UTC (`Z`, see
//! `api::Timestamp`). Unknown fields are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type as FieldType};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

const PACKAGE: &str = ".licensefacade.v1.";
const TIMESTAMP: &str = ".google.protobuf.Timestamp";

/// The messages and enums of the API package with their comments.
pub struct Protos {
    messages: HashMap<String, (DescriptorProto, Vec<i32>)>,
    enums: HashMap<String, (EnumDescriptorProto, Vec<i32>)>,
    comments: HashMap<Vec<i32>, String>,
    /// Leading comments of the service's methods, by method name.
    pub methods: HashMap<String, String>,
}

impl Protos {
    /// Reads the embedded descriptor set.
    pub fn load() -> Self {
        let set = FileDescriptorSet::decode(crate::api::pb::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let file = set
            .file
            .into_iter()
            .find(|f| f.package() == "licensefacade.v1")
            .expect("the API file is in the descriptor set");
        let comments: HashMap<Vec<i32>, String> = file
            .source_code_info
            .iter()
            .flat_map(|info| &info.location)
            .filter_map(|loc| {
                let text = loc.leading_comments.as_deref()?;
                Some((loc.path.clone(), tidy(text)))
            })
            .collect();
        let mut protos = Self {
            messages: HashMap::new(),
            enums: HashMap::new(),
            comments,
            methods: HashMap::new(),
        };
        for (i, message) in file.message_type.iter().enumerate() {
            protos.add_message(PACKAGE, message, vec![4, i as i32]);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            let name = format!("{PACKAGE}{}", e.name());
            protos.enums.insert(name, (e.clone(), vec![5, i as i32]));
        }
        for (i, method) in file.service.iter().flat_map(|s| &s.method).enumerate() {
            if let Some(text) = protos.comments.get(&vec![6, 0, 2, i as i32]) {
                protos
                    .methods
                    .insert(method.name().to_owned(), text.clone());
            }
        }
        protos
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto, path: Vec<i32>) {
        let name = format!("{prefix}{}", message.name());
        for (i, nested) in message.nested_type.iter().enumerate() {
            self.add_message(
                &format!("{name}."),
                nested,
                [&path[..], &[3, i as i32]].concat(),
            );
        }
        for (i, e) in message.enum_type.iter().enumerate() {
            let enum_path = [&path[..], &[4, i as i32]].concat();
            self.enums
                .insert(format!("{name}.{}", e.name()), (e.clone(), enum_path));
        }
        self.messages.insert(name, (message.clone(), path));
    }

    /// The schemas of the request messages `requests`, the answer messages `responses`
    /// (names without the package) and of everything they refer to, by component name.
    ///
    /// A message an answer carries lists its always-present fields as `required` and
    /// allows other properties (fields a later v1 adds); a message a request carries
    /// lists none, since a proto3 JSON reader takes a missing field as its default
    /// (which is also why adding a field to a request breaks no client), and allows no
    /// others, since the service refuses unknown fields. A message used both ways is
    /// described as a request.
    pub fn schemas(
        &self,
        requests: &[&str],
        responses: &[&str],
    ) -> BTreeMap<String, RefOr<Schema>> {
        let in_requests = self.reachable(requests);
        let mut out = BTreeMap::new();
        for name in in_requests.union(&self.reachable(responses)) {
            if let Some((message, path)) = self.messages.get(name) {
                let request = in_requests.contains(name);
                out.insert(
                    component(name),
                    self.message_schema(message, path, request).into(),
                );
            } else if let Some((e, path)) = self.enums.get(name) {
                out.insert(component(name), self.enum_schema(e, path).into());
            } else {
                panic!("{name} is not in the API package");
            }
        }
        out
    }

    /// The full names of `roots` and of the messages and enums they refer to.
    fn reachable(&self, roots: &[&str]) -> BTreeSet<String> {
        let mut done = BTreeSet::new();
        let mut todo: Vec<String> = roots.iter().map(|r| format!("{PACKAGE}{r}")).collect();
        while let Some(name) = todo.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            if let Some((message, _)) = self.messages.get(&name) {
                for field in &message.field {
                    if matches!(field.r#type(), FieldType::Message | FieldType::Enum)
                        && field.type_name() != TIMESTAMP
                    {
                        todo.push(field.type_name().to_owned());
                    }
                }
            }
        }
        done
    }

    fn message_schema(&self, message: &DescriptorProto, path: &[i32], request: bool) -> Schema {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(self.comments.get(path).cloned());
        // The service refuses unknown fields in a request. An answer may gain fields in
        // a later v1 (additions are compatible), which clients are to ignore, so its
        // schema does not forbid them (docs/clients.md, "Versioning policy").
        if request {
            object = object.additional_properties(Some(AdditionalProperties::FreeForm(false)));
        }
        for (i, field) in message.field.iter().enumerate() {
            let field_path = [path, &[2, i as i32]].concat();
            let description = self.comments.get(&field_path).cloned();
            let json = json_name(field);
            let optional = field.proto3_optional()
                || field.oneof_index.is_some()
                || (field.r#type() == FieldType::Message && field.label() != Label::Repeated);
            object = object.property(&json, field_schema(field, description));
            if !optional && !request {
                object = object.required(&json);
            }
        }
        object.build().into()
    }

    fn enum_schema(&self, e: &EnumDescriptorProto, path: &[i32]) -> Schema {
        let mut description = self.comments.get(path).cloned().unwrap_or_default();
        for (i, value) in e.value.iter().enumerate() {
            let comment = self
                .comments
                .get(&[path, &[2, i as i32]].concat())
                .map(|c| c.replace('\n', " "))
                .unwrap_or_default();
            description.push_str(&format!("\n- `{}`: {comment}", value.name()));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(e.value.iter().map(|v| v.name().to_owned())))
            .build()
            .into()
    }
}

/// The component name of a fully qualified proto name: `License.State`.
fn component(full: &str) -> String {
    full.trim_start_matches(PACKAGE).to_owned()
}

/// The JSON name protoc would give (`json_name` when the descriptor carries it).
fn json_name(field: &FieldDescriptorProto) -> String {
    if let Some(name) = &field.json_name {
        return name.clone();
    }
    let mut out = String::new();
    let mut upper = false;
    for c in field.name().chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn field_schema(field: &FieldDescriptorProto, description: Option<String>) -> RefOr<Schema> {
    let single = scalar_schema(field, description.clone(), field.proto3_optional());
    if field.label() == Label::Repeated {
        ArrayBuilder::new()
            .items(single)
            .description(description)
            .build()
            .into()
    } else {
        single
    }
}

/// `nullable`: a proto3 `optional` scalar, which requests may also send as `null`
/// (unset); answers leave it out instead.
fn scalar_schema(
    field: &FieldDescriptorProto,
    description: Option<String>,
    nullable: bool,
) -> RefOr<Schema> {
    let typed = |ty: Type, format: Option<KnownFormat>| {
        let ty = if nullable {
            SchemaType::Array(vec![ty, Type::Null])
        } else {
            SchemaType::Type(ty)
        };
        ObjectBuilder::new()
            .schema_type(ty)
            .format(format.map(SchemaFormat::KnownFormat))
            .description(description.clone())
    };
    let builder = match field.r#type() {
        FieldType::Message if field.type_name() == TIMESTAMP => {
            typed(Type::String, Some(KnownFormat::DateTime))
        }
        FieldType::Message | FieldType::Enum => {
            let mut reference = Ref::from_schema_name(component(field.type_name()));
            if let Some(text) = description {
                reference.description = text;
            }
            return RefOr::Ref(reference);
        }
        FieldType::String => typed(Type::String, None),
        FieldType::Bool => typed(Type::Boolean, None),
        FieldType::Bytes => typed(Type::String, Some(KnownFormat::Byte)),
        FieldType::Double => typed(Type::Number, Some(KnownFormat::Double)),
        FieldType::Float => typed(Type::Number, Some(KnownFormat::Float)),
        FieldType::Int32 | FieldType::Sint32 | FieldType::Sfixed32 => {
            typed(Type::Integer, Some(KnownFormat::Int32))
        }
        FieldType::Uint32 | FieldType::Fixed32 => typed(Type::Integer, Some(KnownFormat::Int64))
            .minimum(Some(0))
            .maximum(Some(u32::MAX)),
        // pbjson writes 64-bit integers as decimal strings (and reads either form).
        FieldType::Int64 | FieldType::Sint64 | FieldType::Sfixed64 => {
            typed(Type::String, Some(KnownFormat::Int64)).pattern(Some("^-?[0-9]{1,19}$"))
        }
        FieldType::Uint64 | FieldType::Fixed64 => {
            typed(Type::String, Some(KnownFormat::Int64)).pattern(Some("^[0-9]{1,20}$"))
        }
        FieldType::Group => typed(Type::Object, None),
    };
    RefOr::T(builder.build().into())
}

/// A proto comment as documentation: the leading space of each line removed.
fn tidy(comment: &str) -> String {
    comment
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}
