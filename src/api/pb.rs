//! Generated protobuf and gRPC code for `licensefacade.v1`, with the proto3 JSON
//! mapping (serde) that the REST API uses. Only the transports use these types.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `licensefacade.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/licensefacade.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/licensefacade.v1.serde.rs"));
}

/// The encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/licensefacade_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_decodes_and_holds_the_service() {
        let fds = pbjson_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds
            .file
            .iter()
            .find(|f| f.package() == "licensefacade.v1")
            .expect("our package");
        assert_eq!(file.service[0].name(), "LicenseService");
    }

    #[test]
    fn license_json_uses_lower_camel_case_and_enum_names() {
        let license = super::v1::License {
            server_id: "srv-1".into(),
            state: super::v1::license::State::Active as i32,
            ..Default::default()
        };
        let json = serde_json::to_value(&license).unwrap();
        assert_eq!(json["serverId"], "srv-1");
        assert_eq!(json["state"], "ACTIVE");
    }
}
