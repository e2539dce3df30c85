/* Token tables of the WhatsApp binary node format, dictionary version 3.
 * The string tables are protocol facts; the sorted index below them is derived from
 * the tables so that lookup is a binary search. */
#include "wa_tokens.h"

#include <stdint.h>
#include <string.h>

/* The tables stay packed to the column limit rather than one string per line. */
/* clang-format off */
const char *const wa_single_tokens[WA_SINGLE_TOKENS] = {
    "", "xmlstreamstart", "xmlstreamend", "s.whatsapp.net", "type", "participant", "from", "receipt", "id",
    "notification", "disappearing_mode", "status", "jid", "broadcast", "user", "devices", "device_hash", "to",
    "offline", "message", "result", "class", "xmlns", "duration", "notify", "iq", "t", "ack", "g.us", "enc",
    "urn:xmpp:whatsapp:push", "presence", "config_value", "picture", "verified_name", "config_code",
    "key-index-list", "contact", "mediatype", "routing_info", "edge_routing", "get", "read", "urn:xmpp:ping",
    "fallback_hostname", "0", "chatstate", "business_hours_config", "unavailable", "download_buckets",
    "skmsg", "verified_level", "composing", "handshake", "device-list", "media", "text", "fallback_ip4",
    "media_conn", "device", "creation", "location", "config", "item", "fallback_ip6", "count",
    "w:profile:picture", "image", "business", "2", "hostname", "call-creator", "display_name", "relaylatency",
    "platform", "abprops", "success", "msg", "offline_preview", "prop", "key-index", "v", "day_of_week",
    "pkmsg", "version", "1", "ping", "w:p", "download", "video", "set", "specific_hours", "props", "primary",
    "unknown", "hash", "commerce_experience", "last", "subscribe", "max_buckets", "call", "profile",
    "member_since_text", "close_time", "call-id", "sticker", "mode", "participants", "value", "query",
    "profile_options", "open_time", "code", "list", "host", "ts", "contacts", "upload", "lid", "preview",
    "update", "usync", "w:stats", "delivery", "auth_ttl", "context", "fail", "cart_enabled", "appdata",
    "category", "atn", "direct_connection", "decrypt-fail", "relay_id", "mmg-fallback.whatsapp.net", "target",
    "available", "name", "last_id", "mmg.whatsapp.net", "categories", "401", "is_new", "index", "tctoken",
    "ip4", "token_id", "latency", "recipient", "edit", "ip6", "add", "thumbnail-document", "26", "paused",
    "true", "identity", "stream:error", "key", "sidelist", "background", "audio", "3", "thumbnail-image",
    "biz-cover-photo", "cat", "gcm", "thumbnail-video", "error", "auth", "deny", "serial", "in",
    "registration", "thumbnail-link", "remove", "00", "gif", "thumbnail-gif", "tag", "capability",
    "multicast", "item-not-found", "description", "business_hours", "config_expo_key", "md-app-state",
    "expiration", "fallback", "ttl", "300", "md-msg-hist", "device_orientation", "out", "w:m", "open_24h",
    "side_list", "token", "inactive", "01", "document", "te2", "played", "encrypt", "msgr", "hide",
    "direct_path", "12", "state", "not-authorized", "url", "terminate", "signature", "status-revoke-delay",
    "02", "te", "linked_accounts", "trusted_contact", "timezone", "ptt", "kyc-id", "privacy_token",
    "readreceipts", "appointment_only", "address", "expected_ts", "privacy", "7", "android", "interactive",
    "device-identity", "enabled", "attribute_padding", "1080", "03", "screen_height",
};

const char *const wa_double_tokens[WA_DICTS][WA_DICT_TOKENS] = {
    {
        "read-self", "active", "fbns", "protocol", "reaction", "screen_width", "heartbeat", "deviceid",
        "2:47DEQpj8", "uploadfieldstat", "voip_settings", "retry", "priority", "longitude", "conflict",
        "false", "ig_professional", "replaced", "preaccept", "cover_photo", "uncompressed", "encopt", "ppic",
        "04", "passive", "status-revoke-drop", "keygen", "540", "offer", "rate", "opus", "latitude", "w:gp2",
        "ver", "4", "business_profile", "medium", "sender", "prev_v_id", "email", "website", "invited",
        "sign_credential", "05", "transport", "skey", "reason", "peer_abtest_bucket", "America/Sao_Paulo",
        "appid", "refresh", "100", "06", "404", "101", "104", "107", "102", "109", "103", "member_add_mode",
        "105", "transaction-id", "110", "106", "outgoing", "108", "111", "tokens", "followers", "ig_handle",
        "self_pid", "tue", "dec", "thu", "joinable", "peer_pid", "mon", "features", "wed",
        "peer_device_presence", "pn", "delete", "07", "fri", "audio_duration", "admin", "connected", "delta",
        "rcat", "disable", "collection", "08", "480", "sat", "phash", "all", "invite", "accept",
        "critical_unblock_low", "group_update", "signed_credential", "blinded_credential", "eph_setting",
        "net", "09", "background_location", "refresh_id", "Asia/Kolkata", "privacy_mode_ts", "account_sync",
        "voip_payload_type", "service_areas", "acs_public_key", "v_id", "0a", "fallback_class", "relay",
        "actual_actors", "metadata", "w:biz", "5", "connected-limit", "notice", "0b", "host_storage",
        "fb_page", "subject", "privatestats", "invis", "groupadd", "010", "note.m4r", "uuid", "0c", "8000",
        "sun", "372", "1020", "stage", "1200", "720", "canonical", "fb", "011", "video_duration", "0d",
        "1140", "superadmin", "012", "Opening.m4r", "keystore_attestation", "dleq_proof", "013", "timestamp",
        "ab_key", "w:sync:app:state", "0e", "vertical", "600", "p_v_id", "6", "likes", "014", "500", "1260",
        "creator", "0f", "rte", "destination", "group", "group_info",
        "syncd_anti_tampering_fatal_exception_enabled", "015", "dl_bw", "Asia/Jakarta", "vp8/h.264", "online",
        "1320", "fb:multiway", "10", "timeout", "016", "nse_retry", "urn:xmpp:whatsapp:dirty", "017",
        "a_v_id", "web_shops_chat_header_button_enabled", "nse_call", "inactive-upgrade", "none", "web",
        "groups", "2250", "mms_hot_content_timespan_in_seconds", "contact_blacklist", "nse_read",
        "suspended_group_deletion_notification", "binary_version", "018",
        "https://www.whatsapp.com/otp/copy/", "reg_push", "shops_hide_catalog_attachment_entrypoint",
        "server_sync", ".", "ephemeral_messages_allowed_values", "019", "mms_vcache_aggregation_enabled",
        "iphone", "America/Argentina/Buenos_Aires", "01a", "mms_vcard_autodownload_size_kb", "nse_ver",
        "shops_header_dropdown_menu_item", "dhash", "catalog_status", "communities_mvp_new_iqs_serverprop",
        "blocklist", "default", "11", "ephemeral_messages_enabled", "01b", "original_dimensions", "8",
        "mms4_media_retry_notification_encryption_enabled", "mms4_server_error_receipt_encryption_enabled",
        "original_image_url", "sync", "multiway", "420", "companion_enc_static",
        "shops_profile_drawer_entrypoint", "01c", "vcard_as_document_size_kb", "status_video_max_duration",
        "request_image_url", "01d", "regular_high", "s_t", "abt", "share_ext_min_preliminary_image_quality",
        "01e", "32", "syncd_key_rotation_enabled", "data_namespace", "md_downgrade_read_receipts2", "patch",
        "polltype", "ephemeral_messages_setting", "userrate", "15", "partial_pjpeg_bw_threshold",
        "played-self", "catalog_exists", "01f", "mute_v2",
    },
    {
        "reject", "dirty", "announcement", "020", "13", "9", "status_video_max_bitrate", "fb:thrift_iq",
        "offline_batch", "022", "full", "ctwa_first_business_reply_logging", "h.264", "smax_id",
        "group_description_length", "https://www.whatsapp.com/otp/code", "status_image_max_edge",
        "smb_upsell_business_profile_enabled", "021", "web_upgrade_to_md_modal", "14", "023", "s_o",
        "smaller_video_thumbs_status_enabled", "media_max_autodownload", "960", "blocking_status", "peer_msg",
        "joinable_group_call_client_version", "group_call_video_maximization_enabled", "return_snapshot",
        "high", "America/Mexico_City", "entry_point_block_logging_enabled", "pop", "024", "1050", "16",
        "1380", "one_tap_calling_in_group_chat_size", "regular_low", "inline_joinable_education_enabled",
        "hq_image_max_edge", "locked", "America/Bogota", "smb_biztools_deeplink_enabled",
        "status_image_quality", "1088", "025", "payments_upi_intent_transaction_limit", "voip", "w:g2", "027",
        "md_pin_chat_enabled", "026", "multi_scan_pjpeg_download_enabled", "shops_product_grid",
        "transaction_id", "ctwa_context_enabled", "20", "fna", "hq_image_quality",
        "alt_jpeg_doc_detection_quality", "group_call_max_participants", "pkey", "America/Belem",
        "image_max_kbytes", "web_cart_v1_1_order_message_changes_enabled", "ctwa_context_enterprise_enabled",
        "urn:xmpp:whatsapp:account", "840", "Asia/Kuala_Lumpur", "max_participants",
        "video_remux_after_repair_enabled", "stella_addressbook_restriction_type", "660", "900", "780",
        "context_menu_ios13_enabled", "mute-state", "ref", "payments_request_messages", "029", "frskmsg",
        "vcard_max_size_kb", "sample_buffer_gif_player_enabled", "match_last_seen", "510", "4983",
        "video_max_bitrate", "028", "w:comms:chat", "17", "frequently_forwarded_max",
        "groups_privacy_blacklist", "Asia/Karachi", "02a", "web_download_document_thumb_mms_enabled", "02b",
        "hist_sync", "biz_block_reasons_version", "1024", "18",
        "web_is_direct_connection_for_plm_transparent", "view_once_write", "file_max_size", "paid_convo_id",
        "online_privacy_setting", "video_max_edge", "view_once_read", "enhanced_storage_management",
        "multi_scan_pjpeg_encoding_enabled", "ctwa_context_forward_enabled",
        "video_transcode_downgrade_enable", "template_doc_mime_types", "hq_image_bw_threshold", "30", "body",
        "u_aud_limit_sil_restarts_ctrl", "other", "participating", "w:biz:directory", "1110", "vp8", "4018",
        "meta", "doc_detection_image_max_edge", "image_quality", "1170", "02c",
        "smb_upsell_chat_banner_enabled", "key_expiry_time_second", "pid", "stella_interop_enabled", "19",
        "linked_device_max_count", "md_device_sync_enabled", "02d", "02e", "360", "enhanced_block_enabled",
        "ephemeral_icon_in_forwarding", "paid_convo_status", "gif_provider", "project_name", "server-error",
        "canonical_url_validation_enabled", "wallpapers_v2", "syncd_clear_chat_delete_chat_enabled",
        "medianotify", "02f", "shops_required_tos_version", "vote", "reset_skey_on_id_change", "030",
        "image_max_edge", "multicast_limit_global", "ul_bw", "21", "25", "5000", "poll", "570", "22", "031",
        "1280", "WhatsApp", "032", "bloks_shops_enabled", "50", "upload_host_switching_enabled",
        "web_ctwa_context_compose_enabled", "ptt_forwarded_features_enabled", "unblocked",
        "partial_pjpeg_enabled", "fbid:devices", "height", "ephemeral_group_query_ts",
        "group_join_permissions", "order", "033", "alt_jpeg_status_quality", "migrate", "popular-bank",
        "win_uwp_deprecation_killswitch_enabled", "web_download_status_thumb_mms_enabled", "blocking",
        "url_text", "035", "web_forwarding_limit_to_groups", "1600", "val", "1000", "syncd_msg_date_enabled",
        "bank-ref-id", "max_subject", "payments_web_enabled", "web_upload_document_thumb_mms_enabled", "size",
        "request", "ephemeral", "24", "receipt_agg", "ptt_remember_play_position", "sampling_weight",
        "enc_rekey", "mute_always", "037", "034", "23", "036", "action", "click_to_chat_qr_enabled", "width",
        "disabled", "038", "md_blocklist_v2", "played_self_enabled", "web_buttons_message_enabled", "flow_id",
        "clear", "450", "fbid:thread", "bloks_session_state", "America/Lima", "attachment_picker_refresh",
        "download_host_switching_enabled", "1792", "u_aud_limit_sil_restarts_test2", "custom_urls",
        "device_fanout", "optimistic_upload", "2000", "key_cipher_suite",
        "web_smb_upsell_in_biz_profile_enabled", "e", "039", "siri_post_status_shortcut", "pair-device", "lg",
        "lc", "stream_attribution_url", "model", "mspjpeg_phash_gen", "catalog_send_all",
        "new_multi_vcards_ui", "share_biz_vcard_enabled", "-", "clean", "200", "md_blocklist_v2_server",
        "03b", "03a", "web_md_migration_experience", "ptt_conversation_waveform",
        "u_aud_limit_sil_restarts_test1",
    },
    {
        "64", "ptt_playback_speed_enabled", "web_product_list_message_enabled", "paid_convo_ts", "27",
        "manufacturer", "psp-routing", "grp_uii_cleanup", "ptt_draft_enabled", "03c", "business_initiated",
        "web_catalog_products_onoff", "web_upload_link_thumb_mms_enabled", "03e", "mediaretry", "35",
        "hfm_string_changes", "28", "America/Fortaleza", "max_keys", "md_mhfs_days",
        "streaming_upload_chunk_size", "5541", "040", "03d", "2675", "03f", "...", "512", "mute", "48", "041",
        "alt_jpeg_quality", "60", "042", "md_smb_quick_reply", "5183", "c", "1343", "40", "1230", "043",
        "044", "mms_cat_v1_forward_hot_override_enabled", "user_notice", "ptt_waveform_send", "047",
        "Asia/Calcutta", "250", "md_privacy_v2", "31", "29", "128", "md_messaging_enabled", "046", "crypto",
        "690", "045", "enc_iv", "75", "failure", "ptt_oot_playback",
        "AIzaSyDR5yfaG7OG8sMTUj8kfQEb8T9pN8BM6Lk", "w", "048", "2201", "web_large_files_ui", "Asia/Makassar",
        "812", "status_collapse_muted", "1334", "257", "2HP4dm", "049", "patches", "1290", "43cY6T",
        "America/Caracas", "web_sticker_maker", "campaign", "ptt_pausable_enabled", "33", "42", "attestation",
        "biz", "04b", "query_linked", "s", "125", "04a", "810", "availability", "1411",
        "responsiveness_v2_m1", "catalog_not_created", "34", "America/Santiago", "1465", "enc_p", "04d",
        "status_info", "04f", "key_version", "..", "04c", "04e", "md_group_notification", "1598", "1215",
        "web_cart_enabled", "37", "630", "1920", "2394", "-1", "vcard", "38", "elapsed", "36", "828", "peer",
        "pricing_category", "1245", "invalid", "stella_ios_enabled", "2687", "45", "1528", "39",
        "u_is_redial_audio_1104_ctrl", "1025", "1455", "58", "2524", "2603", "054",
        "bsp_system_message_enabled", "web_pip_redesign", "051", "verify_apps", "1974", "1272", "1322",
        "1755", "052", "70", "050", "1063", "1135", "1361", "80", "1096", "1828", "1851", "1251", "1921",
        "key_config_id", "1254", "1566", "1252", "2525", "critical_block", "1669", "max_available",
        "w:auth:backup:token", "product", "2530", "870", "1022", "participant_uuid", "web_cart_on_off",
        "1255", "1432", "1867", "41", "1415", "1440", "240", "1204", "1608", "1690", "1846", "1483", "1687",
        "1749", "69", "url_number", "053", "1325", "1040", "365", "59", "Asia/Riyadh", "1177",
        "test_recommended", "057", "1612", "43", "1061", "1518", "1635", "055", "1034", "1375", "750", "1430",
        "event_code", "1682", "503", "55", "865", "78", "1309", "1365", "44", "America/Guayaquil", "535",
        "LIMITED", "1377", "1613", "1420", "1599", "1822", "05a", "1681", "password", "1111", "1214", "1376",
        "1478", "47", "1082", "4282", "Europe/Istanbul", "1307", "46", "058", "1124", "256", "rate-overlimit",
        "retail", "u_a_socket_err_fix_succ_test", "1292", "1370", "1388", "520", "861", "psa", "regular",
        "1181", "1766", "05b", "1183", "1213", "1304", "1537",
    },
    {
        "1724", "profile_picture", "1071", "1314", "1605", "407", "990", "1710", "746", "pricing_model",
        "056", "059", "061", "1119", "6027", "65", "877", "1607", "05d", "917", "seen", "1516", "49", "470",
        "973", "1037", "1350", "1394", "1480", "1796", "keys", "794", "1536", "1594", "2378", "1333", "1524",
        "1825", "116", "309", "52", "808", "827", "909", "495", "1660", "361", "957", "google", "1357",
        "1565", "1967", "996", "1775", "586", "736", "1052", "1670", "bank", "177", "1416", "2194", "2222",
        "1454", "1839", "1275", "53", "997", "1629", "6028", "smba", "1378", "1410", "05c", "1849", "727",
        "create", "1559", "536", "1106", "1310", "1944", "670", "1297", "1316", "1762", "en", "1148", "1295",
        "1551", "1853", "1890", "1208", "1784", "7200", "05f", "178", "1283", "1332", "381", "643", "1056",
        "1238", "2024", "2387", "179", "981", "1547", "1705", "05e", "290", "903", "1069", "1285", "2436",
        "062", "251", "560", "582", "719", "56", "1700", "2321", "325", "448", "613", "777", "791", "51",
        "488", "902", "Asia/Almaty", "is_hidden", "1398", "1527", "1893", "1999", "2367", "2642", "237",
        "busy", "065", "067", "233", "590", "993", "1511", "54", "723", "860", "363", "487", "522", "605",
        "995", "1321", "1691", "1865", "2447", "2462", "NON_TRANSACTIONAL", "433", "871", "432", "1004",
        "1207", "2032", "2050", "2379", "2446", "279", "636", "703", "904", "248", "370", "691", "700",
        "1068", "1655", "2334", "060", "063", "364", "533", "534", "567", "1191", "1210", "1473", "1827",
        "069", "701", "2531", "514", "prev_dhash", "064", "496", "790", "1046", "1139", "1505", "1521",
        "1108", "207", "544", "637", "final", "1173", "1293", "1694", "1939", "1951", "1993", "2353", "2515",
        "504", "601", "857", "modify", "spam_request", "p_121_aa_1101_test4", "866", "1427", "1502", "1638",
        "1744", "2153", "068", "382", "725", "1704", "1864", "1990", "2003", "Asia/Dubai", "508", "531",
        "1387", "1474", "1632", "2307", "2386", "819", "2014", "066", "387", "1468", "1706", "2186", "2261",
        "471", "728", "1147", "1372", "1961",
    },
};
/* clang-format on */

/* Every token but index 0, as an id (below WA_SINGLE_TOKENS: single-byte; above:
 * WA_SINGLE_TOKENS + 256 * dict + index), sorted by the bytes of its string. */
#define WA_TOKEN_COUNT 1259
static const uint16_t token_sorted[WA_TOKEN_COUNT] = {
    739,  862,  440,  851,  775,  45,   176,  199,  367,  380,  385,  389,  399,  409,  418,  421,  435,
    442,  446,  457,  468,  472,  477,  490,  214,  495,  510,  501,  513,  527,  540,  546,  544,  582,
    574,  588,  590,  621,  629,  630,  642,  234,  646,  656,  659,  672,  700,  680,  702,  699,  707,
    728,  744,  743,  757,  772,  761,  774,  259,  771,  779,  782,  789,  790,  805,  802,  794,  812,
    821,  837,  833,  852,  847,  853,  849,  279,  894,  886,  892,  935,  883,  949,  1014, 943,  984,
    1015, 971,  999,  1077, 1022, 1113, 1099, 288,  1185, 1016, 1119, 1186, 1200, 1145, 1249, 1146, 1232,
    1195, 319,  328,  341,  351,  360,  370,  382,  393,  403,  85,   416,  287,  684,  1168, 290,  293,
    374,  916,  593,  878,  295,  950,  1029, 291,  937,  1203, 297,  528,  1060, 1105, 300,  946,  895,
    1182, 1116, 292,  1006, 302,  233,  979,  539,  294,  899,  455,  299,  1083, 1207, 303,  614,  974,
    1017, 985,  896,  1204, 383,  1257, 1091, 1042, 620,  1212, 941,  997,  1000, 1191, 207,  376,  926,
    1169, 1096, 1192, 1001, 975,  856,  788,  1106, 870,  836,  902,  907,  905,  919,  401,  889,  1069,
    800,  657,  1101, 1117, 823,  990,  1213, 1092, 1087, 496,  1002, 982,  960,  1084, 1007, 1088, 414,
    1159, 890,  936,  1102, 1039, 818,  786,  1030, 1053, 897,  961,  991,  1258, 951,  976,  966,  1075,
    530,  1242, 992,  1031, 1137, 512,  1076, 840,  923,  1064, 968,  1227, 953,  920,  924,  1067, 879,
    845,  1251, 1193, 1243, 977,  1032, 930,  486,  1228, 1205, 1150, 1025, 947,  1206, 1040, 1138, 875,
    1036, 1003, 1111, 1093, 1081, 1054, 906,  1037, 855,  969,  529,  682,  1008, 1021, 927,  944,  967,
    1072, 1244, 948,  1229, 1183, 1049, 910,  1061, 972,  955,  931,  928,  1160, 1214, 584,  1125, 1235,
    1112, 1252, 1011, 1004, 1230, 932,  891,  1089, 998,  1063, 1057, 1100, 1097, 1109, 719,  1033, 594,
    970,  1041, 1194, 900,  1068, 929,  1078, 901,  1094, 1236, 1161, 921,  1095, 1139, 626,  860,  903,
    1215, 1085, 1216, 1259, 1055, 888,  1237, 1217, 1140, 69,   551,  741,  724,  1238, 1248, 1107, 1170,
    1171, 1208, 650,  1231, 1253, 1065, 655,  813,  1066, 429,  1254, 701,  1245, 1126, 1147, 1184, 1218,
    1141, 1143, 1038, 1172, 1246, 1108, 861,  693,  925,  1118, 1173, 1162, 1163, 1178, 651,  796,  1120,
    1219, 881,  908,  914,  1197, 986,  819,  153,  882,  1142, 773,  873,  752,  1174, 765,  799,  1114,
    244,  820,  162,  608,  190,  1043, 798,  478,  1127, 829,  843,  763,  866,  631,  1050, 1154, 1187,
    938,  858,  1179, 373,  864,  1103, 1233, 1250, 876,  270,  787,  141,  616,  289,  1009, 922,  830,
    465,  980,  945,  1167, 1165, 824,  962,  1128, 874,  713,  983,  978,  1027, 1255, 778,  329,  1155,
    1133, 1026, 1048, 1201, 580,  357,  661,  400,  652,  956,  1220, 1240, 1132, 579,  776,  1198, 784,
    1044, 993,  1156, 1070, 1241, 1188, 1189, 964,  1082, 1151, 263,  1209, 957,  770,  1124, 1121, 1190,
    654,  880,  1122, 1058, 939,  1148, 397,  781,  395,  1221, 1018, 1073, 1157, 1129, 859,  1175, 1210,
    748,  1104, 1019, 567,  1086, 933,  804,  1180, 227,  893,  1181, 1196, 1176, 1123, 377,  1098, 1152,
    1234, 1079, 1256, 1059, 1012, 807,  952,  1130, 959,  569,  1202, 1131, 1035, 459,  898,  371,  1045,
    838,  816,  1247, 1046, 867,  562,  1222, 1153, 994,  958,  1226, 915,  1166, 1020, 497,  568,  1134,
    1115, 1177, 1047, 1023, 1051, 517,  1028, 1110, 1010, 1149, 1158, 1056, 1071, 810,  445,  557,  536,
    825,  766,  963,  716,  524,  844,  284,  1135, 795,  1239, 411,  587,  344,  563,  815,  940,  981,
    965,  1164, 386,  658,  422,  391,  75,   475,  334,  346,  27,   349,  703,  237,  354,  151,  224,
    322,  332,  554,  780,  673,  228,  494,  128,  285,  223,  130,  717,  831,  232,  161,  321,  169,
    124,  839,  136,  160,  342,  1062, 686,  434,  832,  164,  592,  338,  678,  518,  453,  715,  660,
    609,  13,   884,  68,   184,  47,   758,  271,  1144, 785,  100,  71,   104,  827,  378,  638,  180,
    127,  165,  489,  842,  736,  451,  140,  129,  46,   21,   740,  712,  704,  103,  112,  327,  96,
    452,  466,  52,   62,   35,   185,  32,   250,  323,  358,  37,   431,  116,  125,  570,  65,   255,
    1080, 60,   402,  909,  335,  803,  550,  560,  604,  503,  721,  480,  82,   309,  132,  454,  318,
    123,  324,  170,  183,  405,  59,   230,  54,   722,  16,   192,  243,  15,   450,  131,  206,  493,
    326,  706,  10,   72,   410,  388,  618,  200,  88,   49,   718,  23,   727,  40,   149,  865,  275,
    1090, 231,  29,   806,  846,  697,  257,  203,  632,  602,  525,  339,  692,  669,  633,  441,  456,
    484,  168,  954,  225,  187,  126,  808,  188,  352,  44,   57,   64,   251,  379,  415,  499,  362,
    667,  714,  238,  314,  597,  1211, 711,  552,  305,  585,  320,  6,    575,  502,  28,   166,  41,
    177,  635,  1052, 406,  555,  521,  506,  407,  670,  336,  366,  428,  586,  755,  504,  53,   95,
    242,  668,  764,  205,  523,  591,  114,  361,  70,   607,  534,  553,  507,  436,  8,    156,  306,
    252,  67,   647,  558,  619,  172,  198,  425,  143,  533,  229,  871,  365,  333,  277,  145,  150,
    444,  25,   1136, 142,  63,   182,  12,   311,  520,  158,  80,   36,   725,  904,  623,  850,  262,
    1034, 387,  220,  97,   138,  147,  267,  732,  731,  118,  398,  216,  627,  113,  61,   535,  249,
    753,  578,  911,  99,   767,  564,  687,  186,  191,  708,  742,  628,  481,  854,  801,  768,  545,
    797,  783,  55,   58,   516,  641,  762,  38,   272,  296,  102,  19,   617,  355,  674,  134,  139,
    460,  461,  791,  430,  443,  447,  106,  734,  1223, 313,  77,   204,  735,  547,  603,  181,  648,
    464,  777,  571,  698,  491,  137,  340,  737,  426,  209,  368,  359,  9,    24,   424,  432,  419,
    448,  264,  18,   500,  78,   531,  413,  599,  195,  111,  723,  266,  671,  458,  462,  611,  193,
    301,  1225, 396,  598,  634,  751,  730,  487,  666,  5,    917,  107,  612,  260,  973,  482,  822,
    154,  573,  541,  688,  868,  283,  316,  519,  312,  331,  33,   624,  86,   556,  83,   74,   202,
    488,  709,  317,  653,  483,  526,  675,  258,  254,  31,   1199, 274,  119,  869,  1013, 93,   248,
    226,  345,  221,  364,  913,  101,  110,  1005, 636,  79,   92,   239,  995,  754,  219,  746,  756,
    664,  809,  828,  749,  695,  793,  109,  834,  265,  987,  325,  240,  42,   236,  222,  282,  7,
    694,  148,  572,  286,  343,  437,  173,  996,  473,  532,  492,  353,  133,  73,   175,  253,  691,
    471,  645,  841,  20,   988,  247,  522,  39,   404,  835,  3,    514,  474,  577,  696,  330,  235,
    241,  1024, 307,  273,  171,  637,  439,  348,  90,   738,  476,  449,  438,  548,  467,  643,  196,
    159,  278,  212,  337,  729,  690,  281,  50,   515,  505,  537,  509,  622,  1074, 1224, 91,   375,
    208,  11,   213,  261,  817,  508,  538,  848,  498,  470,  566,  625,  872,  105,  157,  733,  769,
    363,  98,   76,   372,  384,  433,  463,  408,  640,  479,  685,  26,   179,  135,  144,  215,  201,
    606,  211,  942,  56,   310,  152,  178,  163,  174,  167,  417,  390,  218,  17,   197,  146,  304,
    298,  549,  280,  155,  217,  115,  189,  308,  4,    989,  610,  747,  720,  877,  649,  48,   665,
    256,  94,   120,  117,  662,  245,  210,  934,  679,  43,   561,  420,  30,   14,   792,  485,  121,
    369,  81,   350,  683,  108,  863,  469,  576,  269,  51,   34,   887,  84,   394,  89,   381,  581,
    600,  565,  605,  601,  596,  542,  347,  246,  644,  615,  412,  811,  912,  356,  613,  583,  543,
    268,  194,  87,   66,   122,  392,  639,  427,  710,  857,  918,  559,  759,  663,  589,  677,  681,
    595,  814,  745,  885,  750,  423,  726,  826,  511,  689,  760,  276,  315,  705,  676,  22,   2,
    1,
};

static const char *token_str(unsigned id)
{
    if (id < WA_SINGLE_TOKENS)
        return wa_single_tokens[id];
    id -= WA_SINGLE_TOKENS;
    return wa_double_tokens[id / WA_DICT_TOKENS][id % WA_DICT_TOKENS];
}

/* memcmp-style order of the NUL-terminated token t against s[0..n), which holds no NUL:
 * a token that ends early meets a non-zero byte of s and sorts first, so t is never
 * read past its terminator. */
static int token_cmp(const char *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)t[i], b = (unsigned char)s[i];
        if (a != b)
            return a < b ? -1 : 1;
    }
    return t[n] != '\0';
}

int wa_token_lookup(const char *s, size_t n, int *dict, int *index)
{
    if (n == 0 || n > WA_TOKEN_MAX_LEN || memchr(s, 0, n))
        return 0;
    size_t lo = 0, hi = WA_TOKEN_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = token_cmp(token_str(token_sorted[mid]), s, n);
        if (c == 0) {
            unsigned id = token_sorted[mid];
            if (id < WA_SINGLE_TOKENS) {
                *dict = -1;
                *index = (int)id;
            } else {
                *dict = (int)((id - WA_SINGLE_TOKENS) / WA_DICT_TOKENS);
                *index = (int)((id - WA_SINGLE_TOKENS) % WA_DICT_TOKENS);
            }
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}
