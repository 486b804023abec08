from sotay_platform.settings import ServiceSettings


class ContentSettings(ServiceSettings):
    service_name: str = "content"
    database: str = "sotay_content"

    # Size limits of attachments, in MB, checked on the bytes before anything is stored.
    max_document_mb: float = 20
    max_image_mb: float = 5
    max_pdf_pages: int = 500

    # The scheduled-publication worker: how often it looks, and when a silent holder's lease lapses.
    scheduler_interval_seconds: float = 5.0
    scheduler_lease_timeout_seconds: float = 15.0

    # Group commit of first readings (a popular piece read by thousands at once).
    readings_batch_max: int = 500
