from sotay_platform.settings import ServiceSettings


class OrgTreeSettings(ServiceSettings):
    service_name: str = "org-tree"
    database: str = "sotay_org_tree"
